"""fastsig's worker threads (fastsig._workers): the same bits as the serial
ufunc, whatever the workers do, and no trouble at fork or exit."""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastsig
from fastsig import _kernels, _workers

pytestmark = pytest.mark.skipif(not _workers.supported(), reason="fastsig's workers need Linux on x86-64 or AArch64")


def _run(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout (it must exit with 0)."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


# Sizes on both sides of the thresholds, piece lengths that do not divide
# them, and one large enough for several pieces per thread.
SIZES = [12_288, 12_289, 65_536 + 7, 100_003, 2 * (1 << 21) * 2 + 1000]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_every_operation_gives_the_serial_bits(dtype, n, rng):
    x = (rng.standard_normal(n) * 20).astype(dtype)
    x[:4] = [np.nan, np.inf, -np.inf, -0.0]
    s, ds = (_kernels.ufunc(name)(x) for name in ("sigmoid", "sigmoid_derivative"))
    assert np.array_equal(fastsig.sigmoid(x), s, equal_nan=True)
    assert np.array_equal(fastsig.sigmoid_derivative(x), ds, equal_nan=True)
    both = fastsig.sigmoid_and_derivative(x)
    assert np.array_equal(both[0], s, equal_nan=True) and np.array_equal(both[1], ds, equal_nan=True)
    g = np.full(n, 3, dtype)
    assert np.array_equal(fastsig.sigmoid_backward(g, s), _kernels.ufunc("sigmoid_backward")(g, s), equal_nan=True)
    y = x.copy()
    fastsig.sigmoid_(y)
    assert np.array_equal(y, s, equal_nan=True)
    assert _workers.running() >= fastsig.get_num_threads() - 1


def test_workers_wake_from_sleep(rng):
    x = rng.standard_normal(200_000)
    expected = _kernels.ufunc("sigmoid")(x)
    fastsig.sigmoid(x)
    if fastsig.get_num_threads() < 2:
        pytest.skip("one thread: no workers")
    deadline = time.monotonic() + 10
    while _workers._state[_workers.SLEEPING] < _workers.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _workers._state[_workers.SLEEPING] == _workers.running()  # they went to sleep after spinning
    for _ in range(20):
        assert np.array_equal(fastsig.sigmoid(x), expected)
        time.sleep(0.003)


def test_more_workers_than_the_thread_cap():
    """Eight threads' worth of workers, calls capped to fewer, and calls
    whose workers have stopped (the calling thread does it all)."""
    out = _run("""
        import numpy as np, fastsig
        from fastsig import _kernels, _workers
        x = np.random.default_rng(0).standard_normal(300_001).astype(np.float32)
        expected = _kernels.ufunc("sigmoid_derivative")(x)
        for threads in (8, 2, 3, 1, 8):
            fastsig.set_num_threads(threads)
            for _ in range(50):
                assert np.array_equal(fastsig.sigmoid_derivative(x), expected)
        assert _workers.running() == 7
        _workers._stop_workers()
        assert _workers.running() == 0
        assert np.array_equal(fastsig.sigmoid_derivative(x), expected)
        print("ok")
    """, NUMBA_NUM_THREADS="8")
    assert out.strip() == "ok"


def test_forked_child_starts_its_own_workers():
    out = _run("""
        import os, numpy as np, fastsig
        from fastsig import _kernels, _workers
        x = np.random.default_rng(0).standard_normal(500_000)
        expected = _kernels.ufunc("sigmoid")(x)
        assert np.array_equal(fastsig.sigmoid(x), expected)
        pid = os.fork()
        if pid == 0:
            ok = all(np.array_equal(fastsig.sigmoid(x), expected) for _ in range(100))
            os._exit(0 if ok and _workers.running() >= 1 else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert np.array_equal(fastsig.sigmoid(x), expected)
        print("ok")
    """, FASTSIG_NUM_THREADS="2")
    assert out.strip() == "ok"


def test_exit_while_calls_run():
    """Leaving with workers busy, and with another thread mid-call, exits cleanly."""
    code = """
        import threading, numpy as np, fastsig
        x = np.ones(1_000_000, np.float32)
        def hammer():
            while True:
                fastsig.sigmoid_(x)
        fastsig.sigmoid_(x)
        threading.Thread(target=hammer, daemon=True).start()
        for _ in range(200):
            fastsig.sigmoid(x)
        print("ok")
    """
    for _ in range(3):
        assert _run(code, FASTSIG_NUM_THREADS="2").strip() == "ok"


def test_threading_layer_path_gives_the_same_bits():
    out = _run("""
        import numpy as np, fastsig
        from fastsig import _kernels, _workers
        assert not _workers.supported() and not _kernels._USE_WORKERS
        x = np.random.default_rng(0).standard_normal(100_003).astype(np.float32)
        assert np.array_equal(fastsig.sigmoid(x), _kernels.ufunc("sigmoid")(x))
        assert _workers.running() == 0
        print("ok")
    """, FASTSIG_WORKERS="0")
    assert out.strip() == "ok"
