"""The CUDA tests: collected under the simulator or where a GPU may exist.

CI has no GPU, so these tests run in their own pytest process with the
simulator switched on before numba is imported::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/cuda

In the main run (``python -m pytest -q``, no simulator) they are collected
only when numba-cuda is installed and the machine shows an NVIDIA device:
the check reads /dev and /proc instead of importing numba.cuda, so the main
test process never imports numba.cuda where it cannot be used.
"""

from __future__ import annotations

import glob
import importlib.util
import os

import pytest

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _gpu_may_exist() -> bool:
    return importlib.util.find_spec("numba_cuda") is not None and bool(
        glob.glob("/dev/nvidia[0-9]*") or glob.glob("/proc/driver/nvidia/gpus/*")
    )


if not (SIMULATED or _gpu_may_exist()):
    collect_ignore_glob = ["*"]


@pytest.fixture(scope="session")
def cuda():
    """numba.cuda, skipping the test where it cannot run kernels."""
    import fastsig.cuda

    try:
        return fastsig.cuda._require("sigmoid")
    except fastsig.cuda.CudaUnavailableError as exc:
        pytest.skip(str(exc))
