"""The compile cache never breaks an install and never serves stale code."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import fastsig

PACKAGE = Path(fastsig.__file__).parent
PROBE = (
    "import numpy as np, fastsig, fastsig._kernels as k;"
    "print(k.CACHE, fastsig.sigmoid_backward(np.array([2.0]), np.array([0.5]))[0])"
)


def run(env_update, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTSIG_", "NUMBA_CACHE", "XDG_CACHE"))}
    env.update(env_update)
    env["PYTHONPATH"] = str(cwd)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def copy_package(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "pkg" / "fastsig", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "pkg"


def test_no_writable_cache_dir_still_works(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file instead
            blocker = tmp_path / "file"
            blocker.write_text("")
            locked = blocker / "cache"
        env = {"FASTSIG_CACHE_DIR": str(locked), "XDG_CACHE_HOME": str(locked), "HOME": str(locked)}
        assert run(env, copy_package(tmp_path)) == ["False", "0.5"]
    finally:
        (tmp_path / "locked").chmod(stat.S_IRWXU)


def test_editing_a_helper_invalidates_the_cache(tmp_path):
    pkg = copy_package(tmp_path)
    env = {"FASTSIG_CACHE_DIR": str(tmp_path / "cache")}
    assert run(env, pkg) == ["True", "0.5"]
    assert any((tmp_path / "cache").rglob("*.nbi"))
    math_py = pkg / "fastsig" / "_math.py"  # not the file the kernels are defined in
    source = math_py.read_text()
    marker = "return grad_output * (output * (1.0 - output))"
    assert marker in source
    math_py.write_text(source.replace(marker, "return 3.0 * grad_output * (output * (1.0 - output))"))
    assert run(env, pkg) == ["True", "1.5"]


def test_a_renamed_copy_shares_the_cache_dir_safely(tmp_path):
    # Numba names a cache file after the module's last part (_kernels), keys
    # an entry on the bytecode, and an entry's pickled environment imports
    # the module that wrote it: fastsig must not load the entries of a
    # vendored copy (importing it, or failing where it is not importable).
    vendored = tmp_path / "vendor"
    shutil.copytree(PACKAGE, vendored / "vendored_fastsig", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTSIG_", "NUMBA_CACHE", "XDG_CACHE"))}
    env["FASTSIG_CACHE_DIR"] = str(tmp_path / "cache")
    for name, path in (("vendored_fastsig", vendored), ("fastsig", copy_package(tmp_path))):
        probe = (f"import sys, numpy as np, {name} as f; print(f.sigmoid(np.zeros(3))[0], f.sigmoid(np.zeros(1 << 16))[0],"
                 " f.sigmoid_and_derivative(np.zeros(1 << 16, np.float32))[1][0], 'vendored_fastsig' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", probe], cwd=path, env={**env, "PYTHONPATH": str(path)},
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["0.5", "0.5", "0.25", "True" if name == "vendored_fastsig" else "False"]


def test_a_warm_cache_loads_kernels_without_compiling(tmp_path):
    # The second process must take the loops from the cache, skipping even
    # the set-up of Numba's CPU target (numba.np.arraymath is imported only
    # by that set-up and by compiling), which was most of a warm start.
    probe = (
        "import sys, numpy as np, fastsig, fastsig._kernels as k;"
        "y = fastsig.sigmoid(np.zeros(3, np.float32));"
        "print(k.CACHE, y[0], 'numba.np.arraymath' in sys.modules);"
        "big = fastsig.sigmoid(np.zeros(1 << 16));"  # the parallel ufunc
        "rows = fastsig.sigmoid(np.zeros((512, 512))[:, :256]);"  # a matrix slice: the parallel rows kernel
        "print(big[0], rows[0, 0], all(c._cache_hits for c in k._COMPILED_LOOPS),"
        " sum(k.PARALLEL_ROWS['sigmoid'].stats.cache_hits.values()))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTSIG_", "NUMBA_CACHE", "XDG_CACHE"))}
    env.update(FASTSIG_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(copy_package(tmp_path)))
    runs = [subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert runs[0].stdout.split() == ["True", "0.5", "True", "0.5", "0.5", "False", "0"]  # compiled
    assert runs[1].stdout.split() == ["True", "0.5", "False", "0.5", "0.5", "True", "1"]  # loaded
