"""fastsig for dask arrays: lazy, block by block, one thread per task.

>>> import dask.array as da, fastsig.dask
>>> x = da.random.standard_normal(10**9, chunks=2**24)        # doctest: +SKIP
>>> s, ds = fastsig.dask.sigmoid_and_derivative(x)            # doctest: +SKIP
>>> s.sum().compute()                                         # doctest: +SKIP

Each task runs fastsig's single-threaded kernel on its block (under
``fastsig.num_threads(1)``): dask's own threads and worker processes are the
parallelism, so the two never compete for the cores. The block functions
live at module level, so a task pickles as a reference to
``fastsig.dask._sigmoid_block``, not as code, and each worker process
compiles (or loads from fastsig's kernel cache) a kernel once, on its first
block, not once per task.

``fastsig.sigmoid(dask_array)`` also gives a lazy array, through NumPy's
``__array_ufunc__``, but its tasks hold fastsig's ufunc object, which does
not pickle: it runs on dask's local schedulers only, not on a
dask.distributed cluster, and cannot share one pass between σ and σ′.

On a real cluster every worker needs fastsig (and numba) installed, of the
same version as the client; start workers with as many threads as cores
(``dask worker --nworkers N --nthreads T`` with N × T = cores).
"""

from __future__ import annotations

import numpy as np

try:
    import dask.array as da
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("fastsig.dask needs dask: pip install 'fastsig[dask]'") from error

from ._api import _dtypes
from ._api import sigmoid as _sigmoid
from ._api import sigmoid_and_derivative as _sigmoid_and_derivative
from ._api import sigmoid_derivative as _sigmoid_derivative
from ._kernels import num_threads

__all__ = ["sigmoid", "sigmoid_derivative", "sigmoid_and_derivative"]


def _result_dtype(dtype: np.dtype, name: str) -> np.dtype:
    """The dtype fastsig returns (the CPU API's rule, so the two never disagree)."""
    return _dtypes([np.empty(0, dtype)], f"dask.{name}")[1]


# Module-level functions, so that a task refers to them by name. Inside a
# task, one thread: dask's threads and processes are the parallelism.
def _sigmoid_block(x: np.ndarray) -> np.ndarray:
    with num_threads(1):
        return _sigmoid(x)


def _sigmoid_derivative_block(x: np.ndarray) -> np.ndarray:
    with num_threads(1):
        return _sigmoid_derivative(x)


def _sigmoid_and_derivative_block(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with num_threads(1):
        return _sigmoid_and_derivative(x)


def _map(func, x, name: str) -> da.Array:
    x = da.asarray(x)
    dtype = _result_dtype(np.dtype(x.dtype), name)
    # meta= keeps dask from calling func on an empty array to learn the
    # output type, which would compile the kernel in the client.
    return x.map_blocks(func, dtype=dtype, meta=np.empty((0,) * x.ndim, dtype), token=f"fastsig-{name}")


def sigmoid(x: da.Array) -> da.Array:
    """σ(x) of a dask array (or anything ``dask.array.asarray`` takes), lazily.

    Parameters
    ----------
    x : dask.array.Array
        float16, float32, float64, integer or bool values; any chunks.

    Returns
    -------
    dask.array.Array
        Same shape and chunks; x's float dtype, float64 for integers and
        bool. Each block equals ``fastsig.sigmoid`` of it, bit for bit.

    Raises
    ------
    TypeError
        At once, for a complex, object, string or structured dtype.
    """
    return _map(_sigmoid_block, x, "sigmoid")


def sigmoid_derivative(x: da.Array) -> da.Array:
    """σ′(x) of a dask array, lazily; as :func:`sigmoid`."""
    return _map(_sigmoid_derivative_block, x, "sigmoid_derivative")


def sigmoid_and_derivative(x: da.Array) -> tuple[da.Array, da.Array]:
    """(σ(x), σ′(x)) of a dask array, both from one task per block.

    Computing the two together (``dask.compute(s, ds)``) reads each block
    once; computing one alone still runs the fused kernel.
    """
    x = da.asarray(x)
    dtype = _result_dtype(np.dtype(x.dtype), "sigmoid_and_derivative")
    meta = np.empty((0,) * x.ndim, dtype)
    s, ds = da.apply_gufunc(
        _sigmoid_and_derivative_block, "()->(),()", x,
        meta=(meta, meta), vectorize=False,
    )
    return s, ds
