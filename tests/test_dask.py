"""fastsig.dask: lazy block-wise σ and σ′, checked on a two-process LocalCluster."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastsig

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
fsd = pytest.importorskip("fastsig.dask")


def _data(shape, dtype, seed=0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape) * 12
    if np.dtype(dtype).kind == "f":
        x.flat[:4] = [0.0, np.inf, -np.inf, np.nan]
    return x.astype(dtype)


@pytest.fixture(scope="module")
def client():
    # Two worker processes of one thread each on loopback, no dashboard; the
    # with-blocks close client and cluster before the module's tests end.
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        host="127.0.0.1", silence_logs=40,
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def _probe_workers() -> dict:
    """What a worker compiled: the serial ufuncs built, parallel kernels used."""
    from fastsig import _kernels

    return {
        "ufuncs": _kernels.ufunc.cache_info().currsize,
        "parallel": sum(len(k.signatures) for k in (*_kernels.PARALLEL.values(), *_kernels.PARALLEL_ROWS.values())),
    }


def test_matches_numpy_on_a_local_cluster(client):
    # The reference first, with the serial ufuncs the workers use: compiled
    # once here, the workers load them from fastsig's kernel cache.
    x = _data((600, 500), np.float32)
    with fastsig.num_threads(1):
        s_ref, ds_ref = fastsig.sigmoid(x), fastsig.sigmoid_derivative(x)
        fastsig.sigmoid_and_derivative(x[:1])
    dx = da.from_array(x, chunks=(150, 125))  # 16 blocks, 8 per worker
    s, ds = fsd.sigmoid(dx), fsd.sigmoid_derivative(dx)
    s2, ds2 = fsd.sigmoid_and_derivative(dx)
    results = client.compute([s, ds, s2, ds2], sync=True)
    for result, ref in zip(results, [s_ref, ds_ref, s_ref, ds_ref]):
        assert result.dtype == np.float32
        np.testing.assert_array_equal(result, ref)
    # Each worker built each of the three ufuncs once, not once per task, and
    # never ran a parallel kernel inside dask's threads.
    for probe in client.run(_probe_workers).values():
        assert probe == {"ufuncs": 3, "parallel": 0}


@pytest.mark.parametrize("dtype", ["float64", "float16", ">f4", "int32", "bool"])
def test_dtypes_on_the_cluster(client, dtype):
    x = _data((1000,), dtype)
    dx = da.from_array(x, chunks=300)
    s, ds = fsd.sigmoid_and_derivative(dx)
    assert s.dtype == ds.dtype == fastsig.sigmoid(x).dtype
    result_s, result_ds = dask.compute(s, ds, scheduler=client)
    np.testing.assert_array_equal(result_s, fastsig.sigmoid(x))
    np.testing.assert_array_equal(result_ds, fastsig.sigmoid_derivative(x))
    assert result_s.dtype == s.dtype


def test_lazy_and_pickled_by_reference():
    x = da.ones((10, 10), chunks=5, dtype=np.float32)
    s = fsd.sigmoid(x)
    assert isinstance(s, da.Array) and s.chunks == x.chunks and s.dtype == np.float32
    a, b = fsd.sigmoid_and_derivative(x)
    assert a.chunks == b.chunks == x.chunks
    # A task's function travels as its module path, not as code.
    for f in (fsd._sigmoid_block, fsd._sigmoid_derivative_block, fsd._sigmoid_and_derivative_block):
        blob = pickle.dumps(f)
        assert b"fastsig.dask" in blob and len(blob) < 100


def test_rejects_unsupported_dtypes_at_once():
    with pytest.raises(TypeError, match="complex128"):
        fsd.sigmoid(da.ones(4, chunks=2, dtype=complex))
    with pytest.raises(TypeError, match="<U1"):
        fsd.sigmoid_and_derivative(da.from_array(np.array(["a", "b"])))


def test_threaded_scheduler_in_process():
    x = _data((5000,), np.float64)
    s = fsd.sigmoid(da.from_array(x, chunks=1000)).compute(scheduler="threads")
    np.testing.assert_array_equal(s, fastsig.sigmoid(x))


def test_top_level_functions_run_on_the_cluster(client):
    """fastsig.sigmoid(dask_array) hands over to fastsig.dask, whose tasks pickle."""
    x = _data((4000,), np.float64)
    dx = da.from_array(x, chunks=1000)
    np.testing.assert_array_equal(fastsig.sigmoid(dx).compute(), fastsig.sigmoid(x))
    s, ds = fastsig.sigmoid_and_derivative(dx)
    np.testing.assert_array_equal(ds.compute(), fastsig.sigmoid_derivative(x))
