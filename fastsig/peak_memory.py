"""The peak memory of ``fastsig apply``, measured in a child process (Linux).

:mod:`fastsig.batch` promises memory that does not grow with the file; the
tests check that promise and ``benchmarks/batch_bench.py`` reports it, both
with :func:`apply_peak_rss_mib`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The command, then its own peak resident memory (VmHWM, kB) on stdout. Not
# wait4's ru_maxrss: a child's includes its parent's resident memory at exec,
# so it would measure pytest or the benchmark instead.
_CHILD = """
import sys
from fastsig.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as f:
    print(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
sys.exit(code)
"""


def apply_peak_rss_mib(args: list[str]) -> float:
    """Peak resident memory, in MiB, of ``fastsig apply ARGS`` run in a new process.

    The child imports the same fastsig as this process (its directory goes
    first on ``PYTHONPATH``). Raises ``RuntimeError`` with the child's
    stderr if the command fails.
    """
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", _CHILD, "apply", *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"fastsig apply failed: {proc.stderr.strip()}")
    return int(proc.stdout) / 1024
