"""fastsig's worker threads (fastsig._workers), which run the parallel
ufuncs with FASTSIG_WORKERS=1 and in a forked child of a process that
started Numba's OpenMP layer: the serial ufunc's bits, whatever the
workers do, and no trouble at fork or exit. Each test runs in a fresh
interpreter, with the environment it names."""

import os
import subprocess
import sys
import textwrap

import pytest

from fastsig import _workers

pytestmark = pytest.mark.skipif(not _workers.supported(), reason="fastsig's workers need Linux on x86-64 or AArch64")


def _run(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout (it must exit with 0)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("FASTSIG_WORKERS", "FASTSIG_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env={**environment, **env}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


# Every public operation on C-contiguous arrays against the serial ufunc.
_CHECK_ALL_OPERATIONS = """
    import numpy as np, fastsig
    from fastsig import _kernels
    def check(x):
        s, ds = (_kernels.ufunc(name)(x) for name in ("sigmoid", "sigmoid_derivative"))
        same = lambda a, b: np.array_equal(a, b, equal_nan=True)
        assert same(fastsig.sigmoid(x), s) and same(fastsig.sigmoid_derivative(x), ds)
        both = fastsig.sigmoid_and_derivative(x)
        assert same(both[0], s) and same(both[1], ds)
        g = np.full(x.size, 3, x.dtype)
        assert same(fastsig.sigmoid_backward(g, s), _kernels.ufunc("sigmoid_backward")(g, s))
        y = x.copy()
        fastsig.sigmoid_(y)
        assert same(y, s)
"""


def test_every_operation_gives_the_serial_bits():
    # Sizes on both sides of the thresholds, piece lengths that do not
    # divide them, and one large enough for several pieces per thread.
    out = _run(_CHECK_ALL_OPERATIONS + """
    from fastsig import _workers
    assert _kernels._USE_WORKERS
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for n in (6144, 12289, 65_536 + 7, 100_003, 2 * (1 << 21) * 2 + 1000):
            x = (rng.standard_normal(n) * 20).astype(dtype)
            x[:4] = [np.nan, np.inf, -np.inf, -0.0]
            check(x)
    assert _workers.running() == fastsig.get_num_threads() - 1
    print("ok")
    """, FASTSIG_WORKERS="1")
    assert out.strip() == "ok"


def test_workers_wake_from_sleep():
    out = _run("""
        import time, numpy as np, fastsig
        from fastsig import _kernels, _workers
        x = np.random.default_rng(0).standard_normal(300_000)
        expected = _kernels.ufunc("sigmoid")(x)
        fastsig.sigmoid(x)
        deadline = time.monotonic() + 10
        while _workers._state[_workers.SLEEPING] < _workers.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _workers._state[_workers.SLEEPING] == _workers.running() == 1  # asleep after spinning
        for pause in (0.02, 0.003, 0.0):
            for _ in range(10):
                assert np.array_equal(fastsig.sigmoid(x), expected)
                assert np.array_equal(fastsig.sigmoid(x[:20_000]), expected[:20_000])  # (the caller alone)
                time.sleep(pause)
        print("ok")
    """, FASTSIG_WORKERS="1", FASTSIG_NUM_THREADS="2")
    assert out.strip() == "ok"


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
    """, NUMBA_NUM_THREADS="8", FASTSIG_WORKERS="1")
    assert out.strip() == "ok"


# A forked child runs every operation and layout (large contiguous arrays,
# a strided one, a matrix slice) and exits with 0 if all gave the serial
# ufunc's bits; the parent checks that and its own results after.
_FORK = _CHECK_ALL_OPERATIONS + """
    import os
    from fastsig import _workers
    x = np.random.default_rng(0).standard_normal(500_000)
    check(x)
    strided, block = x[::2], x.reshape(500, 1000)[:, :700]
    pid = os.fork()
    if pid == 0:
        try:
            for _ in range(20):
                check(x)
                check(x.astype(np.float32))
            assert np.array_equal(fastsig.sigmoid(strided), _kernels.ufunc("sigmoid")(strided))
            assert np.array_equal(fastsig.sigmoid(block), _kernels.ufunc("sigmoid")(block))
            print(_kernels._USE_WORKERS, _workers.running(), flush=True)
        except BaseException:
            import traceback
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    check(x)
    print("ok")
"""


def test_forked_child_of_an_openmp_parent_runs_on_workers():
    """The parent's large calls started GNU OpenMP, which would kill the
    child (SIGTERM) at its first parallel region: the child's parallel
    ufuncs switch to the workers, its other layouts run on one thread."""
    assert _run(_FORK, FASTSIG_NUM_THREADS="2").split() == ["True", "1", "ok"]


def test_forked_child_without_workers_runs_on_one_thread():
    assert _run(_FORK, FASTSIG_NUM_THREADS="2", FASTSIG_WORKERS="0").split() == ["False", "0", "ok"]


def test_forked_child_of_a_workers_parent_starts_its_own():
    assert _run(_FORK, FASTSIG_NUM_THREADS="2", FASTSIG_WORKERS="1").split() == ["True", "1", "ok"]


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
        assert _run(code, FASTSIG_NUM_THREADS="2", FASTSIG_WORKERS="1").strip() == "ok"


def test_a_warm_cache_loads_the_worker_loops(tmp_path):
    """The workers' cfuncs come from the disk cache like every other loop
    (one that needed Numba's runtime aborted the process on that load)."""
    probe = """
        import numpy as np, fastsig, fastsig._kernels as k
        assert fastsig.sigmoid(np.zeros(1 << 16))[0] == 0.5
        names = [c.__name__ for c in k._COMPILED_LOOPS]
        print("_worker" in names, all(c._cache_hits for c in k._COMPILED_LOOPS))
    """
    runs = [_run(probe, FASTSIG_WORKERS="1", FASTSIG_NUM_THREADS="2", FASTSIG_CACHE_DIR=str(tmp_path)).split()
            for _ in range(2)]
    assert runs == [["True", "False"], ["True", "True"]]  # compiled, then loaded


def test_the_threading_layer_is_the_default():
    out = _run("""
        import numpy as np, fastsig
        from fastsig import _kernels, _workers
        x = np.random.default_rng(0).standard_normal(100_003).astype(np.float32)
        assert np.array_equal(fastsig.sigmoid(x), _kernels.ufunc("sigmoid")(x))
        print(_kernels._USE_WORKERS, _workers.running())
    """)
    assert out.split() == ["False", "0"]
