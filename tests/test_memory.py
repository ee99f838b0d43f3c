"""The pool of large result blocks (fastsig._memory): results from it are
ordinary arrays that own their memory, a freed block serves the next result
of its size, the pool keeps no more than it may, and nothing breaks across
threads or at exit. Below the pool's size, sigmoid_and_derivative's pair of
results is one block, which malloc keeps when it is freed."""

import resource
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastsig
from fastsig import _memory
from fastsig.baseline import sigmoid as baseline_sigmoid

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import get_handler_name

LARGE = _memory.POOL_MIN // 8 + 1000  # float64 elements of a pooled result


@pytest.fixture(autouse=True)
def empty_pool():
    fastsig.release_memory()
    yield
    fastsig.release_memory()


def _large(dtype=np.float64, size=LARGE):
    return np.random.default_rng(5).uniform(-30, 30, size).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_results_come_from_the_pool_and_own_their_memory(dtype):
    x = _large(dtype, _memory.POOL_MIN // np.dtype(dtype).itemsize + 16)
    s = fastsig.sigmoid(x)
    s2, ds = fastsig.sigmoid_and_derivative(x)
    for r in (s, s2, ds):
        assert get_handler_name(r) == "fastsig_pool"
        assert r.flags.owndata and r.flags.c_contiguous and r.dtype == dtype
    np.testing.assert_array_equal(s, s2)
    np.testing.assert_allclose(s, baseline_sigmoid(x.astype(np.float64)), rtol=1e-6)
    assert get_handler_name(fastsig.sigmoid(x[:1000])) != "fastsig_pool"  # small: NumPy's own


def test_a_freed_block_serves_the_next_result_of_its_size():
    x = _large()
    first = fastsig.sigmoid(x)
    address = first.ctypes.data
    del first
    assert _memory.kept() == x.nbytes
    again = fastsig.sigmoid_derivative(x)
    assert again.ctypes.data == address and _memory.kept() == 0
    np.testing.assert_array_equal(again[:5000], fastsig.sigmoid_derivative(x[:5000]))
    other = fastsig.sigmoid(_large(size=LARGE + 8))  # another size: a block of its own
    assert other.ctypes.data != address


def test_release_gives_the_blocks_back():
    x = _large()
    blocks = [fastsig.sigmoid(x), fastsig.sigmoid(x)]
    del blocks
    assert _memory.kept() == 2 * x.nbytes
    assert fastsig.release_memory() == 2 * x.nbytes
    assert _memory.kept() == 0 and fastsig.release_memory() == 0


def test_the_pool_keeps_at_most_its_slots():
    x = _large()
    results = [fastsig.sigmoid(x) for _ in range(_memory.SLOTS + 3)]
    del results
    assert _memory.kept() == _memory.SLOTS * x.nbytes


def test_resize_and_copies_of_pooled_arrays():
    r = fastsig.sigmoid(_large())
    grown = np.resize(r, r.size + 10)  # a new array
    r.resize(r.size + 100, refcheck=False)  # realloc through the pool's handler
    assert r[: grown.size - 10].tolist() == grown[: grown.size - 10].tolist()
    assert np.array_equal(np.frombuffer(r.tobytes(), r.dtype), r)


def test_threads_allocating_and_freeing_at_once():
    x = _large(np.float32, _memory.POOL_MIN // 4 + 64)
    expected = fastsig.sigmoid(x[:100000])
    errors = []

    def work():
        try:
            for _ in range(6):
                s, ds = fastsig.sigmoid_and_derivative(x)
                assert np.array_equal(s[:100000], expected)
                del s, ds
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _memory.kept() <= _memory.SLOTS * x.nbytes


# 200,000 elements: 0.8 or 1.6 MB a result, between _PAIR_BLOCK_MIN and POOL_MIN.
PAIR = 200_000


def _page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap trimming, counted by getrusage")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_dropped_pair_of_results_comes_back_without_fresh_pages(dtype):
    """Two separate results of one size, freed together, made glibc give
    the top of the heap back, and the next call faulted in fresh pages for
    both (1e5 float64: 5-7x the time of a call into out=)."""
    x = _large(dtype, PAIR)
    for _ in range(3):
        fastsig.sigmoid_and_derivative(x)
    before = _page_faults()
    for _ in range(20):
        fastsig.sigmoid_and_derivative(x)
    # Fresh pages would be 2 * x.nbytes / 4096 faults a call.
    assert _page_faults() - before < x.nbytes // 4096


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_pair_of_results_is_the_halves_of_one_block(dtype):
    x = _large(dtype, PAIR)
    expected = (fastsig.sigmoid(x), fastsig.sigmoid_derivative(x))
    pairs = [fastsig.sigmoid_and_derivative(x), fastsig.sigmoid_and_derivative(x.reshape(400, 500))]
    with fastsig.num_threads(1):  # the path of a thread cap
        pairs.append(fastsig.sigmoid_and_derivative(x))
    pairs.append(fastsig.sigmoid_and_derivative(x.astype(np.int64)))  # converted first (float64 results)
    for s, ds in pairs:
        assert s.base is not None and s.base is ds.base and s.base.shape == (2, *s.shape)
        assert s.flags.c_contiguous and ds.flags.c_contiguous and s.flags.writeable and ds.flags.writeable
        assert not np.shares_memory(s, ds)
    for s, ds in pairs[:3]:
        np.testing.assert_array_equal(s.ravel(), expected[0])
        np.testing.assert_array_equal(ds.ravel(), expected[1])
    small = fastsig.sigmoid_and_derivative(x[:6000])  # parallel, below 64 KiB: separate arrays
    assert all(r.flags.owndata for r in small)


def test_a_pair_block_of_the_pools_size_comes_from_the_pool():
    """Results of half POOL_MIN: a block malloc would mmap afresh on every call."""
    x = _large(size=_memory.POOL_MIN // 16 + 1000)
    s, ds = fastsig.sigmoid_and_derivative(x)
    assert s.base is ds.base and get_handler_name(s.base) == "fastsig_pool"
    address = s.ctypes.data
    del s, ds
    again, _ = fastsig.sigmoid_and_derivative(x)
    assert again.ctypes.data == address


def _run(code: str, **env) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_off_and_capped_by_the_environment():
    code = (
        "import numpy as np, fastsig; from fastsig import _memory\n"
        "from numpy._core.multiarray import get_handler_name\n"
        f"r = fastsig.sigmoid(np.ones({LARGE})); print(get_handler_name(r)); del r; print(_memory.kept())\n"
    )
    off = _run(code, FASTSIG_POOL_BYTES="0")
    assert off.returncode == 0, off.stderr
    assert off.stdout.split() == ["default_allocator", "0"]
    capped = _run(code, FASTSIG_POOL_BYTES=str(LARGE * 8 - 1))  # smaller than the block: nothing kept
    assert capped.returncode == 0, capped.stderr
    assert capped.stdout.split() == ["fastsig_pool", "0"]


def test_pooled_arrays_alive_at_exit():
    code = (
        "import numpy as np, fastsig\n"
        f"kept = [fastsig.sigmoid(np.ones({LARGE})) for _ in range(3)]\n"
        f"freed = fastsig.sigmoid(np.ones({LARGE})); del freed\n"
        "import sys; sys.modules['keep'] = kept\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
