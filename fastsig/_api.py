"""The public array functions: dtype rules, ``out=``, shapes and layouts.

The arithmetic is in :mod:`fastsig._math`; the compiled kernels, and the
choice between them, in :mod:`fastsig._kernels`. This module turns what the
user passed into arguments for a serial NumPy ufunc (any shape, strides,
broadcasting, overlap) or, for large contiguous arrays, a parallel kernel.
"""

from __future__ import annotations

import math
import os
from typing import Any, TypeVar, Union

import numpy as np
import numpy.typing as npt

from . import _memory, _tensors
from ._kernels import _settings as _thread_settings
from ._kernels import parallel_threads, parallel_ufunc, run_kernel, to_float16, ufunc

ArrayLike = npt.ArrayLike
#: What the functions return: an ndarray, a NumPy scalar for scalar input,
#: or the type of a delegating input (a dask array, an xarray DataArray, a
#: torch tensor: see _tensors).
Result = Union[np.ndarray, np.floating, Any]
#: What the in-place functions take and return: a float ndarray (or a view of
#: one), a CPU torch tensor, or GPU data.
Overwritten = TypeVar("Overwritten")

# Module globals, not attributes: `np.ndarray` and a second `x.dtype` cost
# about 60 ns of a 400 ns call.
_ndarray = np.ndarray
_empty, _empty_like = np.empty, np.empty_like
_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)
_F16 = np.dtype(np.float16)
_ACCEPTED = "float16, float32, float64, integer or bool"
_NOUT = {"sigmoid": 1, "sigmoid_derivative": 1, "sigmoid_and_derivative": 2, "sigmoid_backward": 1}
# Arrays below this size go straight to the serial ufunc (never parallel):
# a 1-element call costs little more than np.exp on it.
_SMALL = 4096
# The ufuncs the hot paths call, looked up without a function call: the
# serial ones, and those whose inner loop runs large arrays on all threads.
_UFUNCS: dict[str, np.ufunc] = {}
_PARALLEL_UFUNCS: dict[str, np.ufunc] = {}
_POOL_MIN = _memory.POOL_MIN


def _new_result(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """np.empty(shape, dtype): results of POOL_MIN bytes and more from the
    memory pool, whose blocks the next call reuses without fresh pages (see _memory)."""
    return _memory.empty(shape, dtype) if math.prod(shape) * dtype.itemsize >= _POOL_MIN else np.empty(shape, dtype)


def _result_like(x: np.ndarray) -> np.ndarray:
    """A new result for a C-contiguous or 1-D x (np.empty_like's layout for those)."""
    return _new_result(x.shape, x.dtype)


# From this many bytes per result, the two results of sigmoid_and_derivative
# are the halves of one block. glibc's malloc gives the top of its heap back
# to the kernel once the free space there reaches twice its mmap threshold,
# which follows the largest block freed: two blocks of one size freed
# together reach it, one does not. So a call whose pair was dropped before
# the next (a benchmark loop, timeit, pytest-benchmark) got both results in
# fresh pages every time: Intel Xeon, 1e5 float64, 516-694 µs a call
# against 96-116 into out= and 90 for sigmoid alone. (Below 64 KiB a pair is
# under glibc's smallest threshold, 128 KiB. A block of POOL_MIN or more
# comes from the pool, as a result that large would: malloc would mmap it
# afresh each time. From POOL_MIN each, the pool keeps the two results.)
_PAIR_BLOCK_MIN = 64 << 10


def _result_pair(shape: tuple, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Two new results in C order: the halves of one block (see
    _PAIR_BLOCK_MIN) between _PAIR_BLOCK_MIN and POOL_MIN bytes each."""
    if _PAIR_BLOCK_MIN <= math.prod(shape) * dtype.itemsize < _POOL_MIN:
        block = _new_result((2, *shape), dtype)
        return block[0], block[1]
    return _new_result(shape, dtype), _new_result(shape, dtype)


def _allocating(u: np.ufunc, x: np.ndarray, nout: int = 1) -> Any:
    """u(x), allocating its results as NumPy would, but from the pool when
    large and C order, and a pair as one block (see _result_pair)."""
    if x.flags.c_contiguous and (x.nbytes >= _POOL_MIN or (nout == 2 and x.nbytes >= _PAIR_BLOCK_MIN)):
        return u(x, out=_result_like(x) if nout == 1 else _result_pair(x.shape, x.dtype))
    return u(x)


def _plain_out(out: Any, x: np.ndarray) -> bool:
    """Is out= an ordinary writeable array of x's dtype and shape (no checks needed)?"""
    return type(out) is _ndarray and out.dtype is x.dtype and out.shape == x.shape and out.flags.writeable


def _kernel_layout(a: np.ndarray) -> bool:
    """Can the parallel kernels take a as it is: C-contiguous, or 1-D with
    aligned elements at any stride (a field of a packed record array is
    not: the loops count strides in elements)?"""
    flags = a.flags
    return flags.c_contiguous or (a.ndim == 1 and flags.aligned)


def _ds_as_input(x: np.ndarray, s: Any, ds: Any) -> bool:
    """Can ds go to the ufunc (x, ds) -> s as an input that it writes σ' into
    (x a float32 or float64 array)?

    NumPy must pass ds as it is (of x's dtype, aligned, no copy: apart from
    s), and it must be writeable and either x itself or apart from it (NumPy
    copies no input for another input); s and ds of x's shape, as the
    two-output ufunc requires (it broadcasts neither). Apart means here:
    both own their data, separate allocations (np.may_share_memory would
    cost more than the call saves).
    """
    dtype, shape = x.dtype, x.shape
    if not (type(s) is _ndarray and type(ds) is _ndarray and s.dtype is dtype and ds.dtype is dtype
            and s is not ds and s.shape == shape and ds.shape == shape):
        return False
    flags = ds.flags
    return (flags.writeable and flags.aligned and flags.owndata and s.flags.owndata
            and (ds is x or x.flags.owndata))


def _apart(a: np.ndarray, b: np.ndarray) -> bool:
    """Are a and b certainly without common elements? Two arrays that own
    their data (NumPy allocated each) are separate allocations, found
    without np.may_share_memory (0.4 µs, a tenth of a parallel call's
    overhead; base is None is not enough: C code can wrap foreign memory)."""
    return (a.flags.owndata and b.flags.owndata) or not np.may_share_memory(a, b)


def _load(name: str) -> np.ufunc:
    _UFUNCS[name] = ufunc(name)
    return _UFUNCS[name]


def _load_parallel(name: str) -> np.ufunc:
    _PARALLEL_UFUNCS[name] = parallel_ufunc(name)
    return _PARALLEL_UFUNCS[name]


# A forked child asks parallel_ufunc() again, which starts its workers if
# it runs on them (see _kernels._after_fork_in_child).
os.register_at_fork(after_in_child=_PARALLEL_UFUNCS.clear)


def _unary(name: str, x: Any, out: Any) -> Result:
    """One-input operations. The common case (a float32/float64 ndarray, out=
    None or a plain array like it) is decided here in a few steps: a call
    costs little more than np.exp's. A large C-contiguous x goes to the
    parallel ufunc, whose inner loop runs it on all threads (NumPy handles
    out='s layout and any overlap with x); other layouts, and calls under a
    num_threads() cap, decide in Python."""
    if type(x) is _ndarray and ((dtype := x.dtype) is _F64 or dtype is _F32):
        size = x.size
        if size < _SMALL and type(out) is _ndarray and out.dtype is dtype:
            # A small x into an out of its dtype: NumPy's own checks of out
            # (shape, broadcasting, read-only, overlap) cost less than
            # _plain_out (590 -> 390 ns a call); on an error, _call raises it
            # in fastsig's words.
            try:
                return (_UFUNCS.get(name) or _load(name))(x, out)
            except ValueError:
                return _call(name, (x,), out)
        if out is None or _plain_out(out, x):
            if size >= _SMALL and x.flags.c_contiguous and _thread_settings.threads is None:
                u = _PARALLEL_UFUNCS.get(name) or _load_parallel(name)
                return _allocating(u, x) if out is None else u(x, out=out)
            # (Small arrays took the paths above, or the public function's.)
            threads = parallel_threads(name, size, dtype)
            if not threads:
                u = _UFUNCS.get(name) or _load(name)
                return _allocating(u, x) if out is None else u(x, out=out)
            if _kernel_layout(x) and (out is None or (_kernel_layout(out) and (out is x or _apart(out, x)))):
                result = _result_like(x) if out is None else out
                run_kernel(name, threads, _c_order_1d(x), _c_order_1d(result))
                return result
    return _call(name, (x,), out)


# --------------------------------------------------------------------------
# dtype rules
# --------------------------------------------------------------------------
def _compute_dtype(dtype: np.dtype, name: str) -> np.dtype:
    """The dtype a kernel computes in: float32 stays float32; float16,
    float64, integers and bool compute in float64."""
    if dtype.kind == "f" and dtype.itemsize == 4:
        return _F32
    if (dtype.kind == "f" and dtype.itemsize in (2, 8)) or dtype.kind in "biu":
        return _F64
    raise TypeError(
        f"fastsig.{name} does not accept {dtype} input: it takes {_ACCEPTED} values"
    )


def _dtypes(arrays: list[np.ndarray], name: str) -> tuple[np.dtype, np.dtype]:
    """(compute dtype, result dtype) for the inputs of one call.

    float16 is computed in float64 and rounded once to float16, so every
    float16 result is correctly rounded.
    """
    first = arrays[0].dtype
    if (first is _F64 or first is _F32) and all(a.dtype is first for a in arrays):
        return first, first  # the common case, without building sets
    computes = {_compute_dtype(a.dtype, name) for a in arrays}
    if computes == {_F32}:
        return _F32, _F32
    if all(a.dtype.kind == "f" and a.dtype.itemsize == 2 for a in arrays):
        return _F64, _F16
    return _F64, _F64


# --------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------
def _delegates(x: Any) -> bool:
    """Objects such as dask arrays and xarray DataArrays that implement NumPy's ufunc protocol."""
    return type(x) is not np.ndarray and not isinstance(x, (np.ndarray, np.generic)) and hasattr(type(x), "__array_ufunc__")


def _check_out(out: Any, shape: tuple, nout: int, name: str) -> tuple[np.ndarray, ...] | None:
    if out is None:
        return None
    outs = out if isinstance(out, tuple) else (out,)
    if len(outs) != nout:
        expected = "one array" if nout == 1 else f"a tuple of {nout} arrays"
        raise TypeError(f"fastsig.{name}: out= must be {expected}")
    for i, o in enumerate(outs):
        what = "out" if nout == 1 else f"out[{i}]"
        if not isinstance(o, np.ndarray):
            raise TypeError(f"fastsig.{name}: {what} must be a NumPy array, got {type(o).__name__}")
        if not o.flags.writeable:
            raise ValueError(f"fastsig.{name}: {what} is read-only")
        if o.dtype.kind != "f" or o.dtype.itemsize > 8:
            raise TypeError(f"fastsig.{name}: {what} has dtype {o.dtype.name}; it must be float16, float32 or float64")
        try:
            fits = o.shape == shape or np.broadcast_shapes(shape, o.shape) == o.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"fastsig.{name}: {what} has shape {o.shape}, but the result has shape {shape}")
    if nout == 2 and np.may_share_memory(outs[0], outs[1]):
        raise ValueError(f"fastsig.{name}: out[0] and out[1] must not overlap")
    return outs


def _c_order_1d(a: np.ndarray) -> np.ndarray:
    """A C-contiguous array as 1-D: itself when it is (a reshape costs about
    as much as every other check of a parallel call)."""
    return a if a.ndim == 1 else a.reshape(-1)


def _flat(a: np.ndarray) -> np.ndarray | None:
    """A 1-D view of a contiguous (C or Fortran) array in memory order, else None."""
    if a.flags.c_contiguous:
        return _c_order_1d(a)
    if a.flags.f_contiguous:
        return a.T.reshape(-1)
    return None


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b are the very same elements (a safe in-place pair)."""
    return a is b or (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.dtype == b.dtype
    )


# --------------------------------------------------------------------------
# the one call path
# --------------------------------------------------------------------------
def _call(name: str, args: tuple, out: Any) -> Result:
    nout = _NOUT[name]
    if _tensors.involved(args, out):  # torch tensors, GPU data: before CuPy's __array_ufunc__
        return _tensors.call(name, args, out)
    if any(_delegates(a) for a in args):
        return _delegate(name, args, out)
    arrays = [a if isinstance(a, np.ndarray) else np.asarray(a) for a in args]
    compute, result_dtype = _dtypes(arrays, name)
    shape = arrays[0].shape
    if len(arrays) > 1 and any(a.shape != shape for a in arrays[1:]):
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    outs = _check_out(out, shape, nout, name)

    threads = parallel_threads(name, arrays[0].size if len(arrays) == 1 else math.prod(shape), compute)
    if threads:
        done = _run_parallel(name, threads, arrays, outs, shape, compute, result_dtype)
        if done is not None:
            return done if nout > 1 else done[0]

    u = ufunc(name)
    kwargs = {} if all(a.dtype == compute for a in arrays) else {"dtype": compute}
    if outs is not None:
        if all(o.dtype == compute for o in outs):
            return u(*arrays, out=outs if nout > 1 else outs[0], **kwargs)
        # Into a different float type: compute, then cast. (Given such an
        # out=, a ufunc built by Numba's fromfunc also casts the output's old
        # contents into its buffer, and old signalling NaNs would warn.)
        results = u(*arrays, **kwargs)
        with np.errstate(all="ignore"):
            for o, r in zip(outs, results if nout > 1 else (results,)):
                np.copyto(o, _to_float16(r) if o.dtype == _F16 else r, casting="same_kind")
        return outs if nout > 1 else outs[0]
    result = u(*arrays, **kwargs)
    if result_dtype is _F16:
        return tuple(_to_float16(r) for r in result) if nout > 1 else _to_float16(result)
    return result


def _to_float16(result: Any) -> Any:
    """Round float64 results once to float16 (quietly: small ones are subnormal there)."""
    if np.ndim(result) == 0:
        with np.errstate(all="ignore"):
            return np.float16(result)
    return to_float16(result)


def _rows(arrays: list[np.ndarray]) -> list[np.ndarray] | None:
    """2-D views (rows, inner axis) of arrays of one shape, the same element
    at the same index in each, the axis of the first array's smallest
    stride inner; None when one of them has no such view."""
    order = sorted(range(arrays[0].ndim), key=lambda k: -abs(arrays[0].strides[k]))
    views = []
    for a in arrays:
        shape = [a.shape[k] for k in order]
        strides = [a.strides[k] for k in order]
        # The outer axes make one when each steps over the next one whole.
        if any(strides[i] != strides[i + 1] * shape[i + 1] for i in range(len(order) - 2)):
            return None
        rows = math.prod(shape[:-1])
        views.append(np.lib.stride_tricks.as_strided(a, (rows, shape[-1]), (strides[-2], strides[-1])))
    return views


def _run_parallel(name, threads, arrays, outs, shape, compute, result_dtype) -> tuple | None:
    """Run the parallel kernel when the operands are 1-D (any strides),
    contiguous in one layout, or viewable as rows (a slice of a matrix),
    else None."""
    nout = _NOUT[name]
    if any(a.shape != shape for a in arrays):  # broadcasting: the ufunc does it without copies
        return None
    arrays = [a if a.dtype == compute and a.dtype.isnative else a.astype(compute) for a in arrays]
    first = arrays[0]
    if outs is None:  # laid out as NumPy's ufuncs would (broadcast axes in C order)
        c_order = 0 in first.strides or first.flags.c_contiguous or first.ndim == 1
        if not c_order:
            results = tuple(np.empty_like(first) for _ in range(nout))
        else:
            results = _result_pair(shape, compute) if nout == 2 else (_new_result(shape, compute),)
    else:
        for o in outs:
            if o.dtype != compute or o.shape != shape:
                return None
            if any(np.may_share_memory(o, a) and not _same_memory(o, a) for a in arrays):
                return None
        results = outs
    operands = [*arrays, *results]
    if not all(o.flags.aligned for o in operands):  # a packed record's field: strides not whole elements
        return None
    if first.ndim == 1:
        views = operands  # any strides: the kernels take them
    elif all(o.strides == first.strides for o in operands) and _flat(first) is not None:
        views = [_flat(o) for o in operands]  # one contiguous layout
    else:
        views = _rows(operands)
        if views is None:
            return None
    run_kernel(name, threads, *views)
    if outs is None and result_dtype is _F16:
        results = tuple(_to_float16(r) for r in results)
    return results


def _delegate(name: str, args: tuple, out: Any) -> Result:
    """Hand dask arrays, xarray objects and the like to their __array_ufunc__."""
    kwargs = {} if out is None else {"out": out}
    if out is None and name != "sigmoid_backward" and type(args[0]).__module__.startswith("dask."):
        # fastsig.dask's block functions pickle by reference, so the graph also
        # runs on dask.distributed (the ufunc object itself cannot be pickled).
        from . import dask as fastsig_dask

        return getattr(fastsig_dask, name)(args[0])
    if name == "sigmoid_and_derivative":  # dask maps only NumPy's own multi-output ufuncs
        if out is not None:
            raise TypeError("fastsig.sigmoid_and_derivative: out= takes NumPy arrays only")
        return ufunc("sigmoid")(*args), ufunc("sigmoid_derivative")(*args)
    return ufunc(name)(*args, **kwargs)


# --------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------
def sigmoid(x: ArrayLike, /, out: np.ndarray | None = None) -> Result:
    """Logistic sigmoid σ(x) = 1 / (1 + e^-x), element-wise.

    Parameters
    ----------
    x : array_like
        float16, float32, float64, integer or bool values, any shape, order
        or strides. Dask arrays and xarray objects are handled through
        NumPy's ``__array_ufunc__`` protocol (the result is lazy for dask).
        A torch tensor on the CPU gives a tensor, and one that requires
        grad a differentiable result whose gradient is
        :func:`sigmoid_derivative`; GPU data goes to :mod:`fastsig.cuda`.
    out : ndarray, optional
        Where to write the result: a float array (or CPU tensor) of the
        broadcast shape. ``out=x`` computes in place; overlapping views are
        handled.

    Returns
    -------
    ndarray or scalar
        σ(x) in x's float dtype (float64 for integers and bool); a NumPy
        scalar for a scalar or 0-d input. Within 1 ulp of the exact value in
        every dtype, subnormal results included; σ(±0) = 0.5, σ(+inf) = 1,
        σ(-inf) = 0, NaN stays NaN. No floating-point warning for any input.

    Raises
    ------
    TypeError
        For complex, object, string or datetime input.

    Examples
    --------
    >>> import fastsig
    >>> float(fastsig.sigmoid(0.0))
    0.5
    >>> fastsig.sigmoid([-745.0, 40.0]).tolist()
    [5e-324, 1.0]
    """
    # Small arrays: what _unary would do, one Python call sooner.
    if out is None and type(x) is _ndarray and x.size < _SMALL and ((dtype := x.dtype) is _F64 or dtype is _F32):
        return (_UFUNCS.get("sigmoid") or _load("sigmoid"))(x)
    return _unary("sigmoid", x, out)


def sigmoid_derivative(x: ArrayLike, /, out: np.ndarray | None = None) -> Result:
    """Derivative of the logistic sigmoid, σ'(x) = σ(x)(1 - σ(x)), element-wise.

    Computed as σ(x)σ(-x) from e^-|x|, so it keeps full relative accuracy
    (within 2 ulp) where the textbook s·(1-s) loses digits (|x| > 1) or
    returns 0 (|x| > 37 in float64): σ'(-745) is 5e-324, not 0.

    Parameters
    ----------
    x : array_like
        As for :func:`sigmoid`.
    out : ndarray, optional
        As for :func:`sigmoid`.

    Returns
    -------
    ndarray or scalar
        σ'(x); σ'(0) = 0.25, σ'(±inf) = 0, NaN stays NaN.

    Examples
    --------
    >>> import fastsig
    >>> float(fastsig.sigmoid_derivative(0))
    0.25
    """
    # Small arrays: what _unary would do, one Python call sooner.
    if out is None and type(x) is _ndarray and x.size < _SMALL and ((dtype := x.dtype) is _F64 or dtype is _F32):
        return (_UFUNCS.get("sigmoid_derivative") or _load("sigmoid_derivative"))(x)
    return _unary("sigmoid_derivative", x, out)


def sigmoid_and_derivative(
    x: ArrayLike, /, out: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[Result, Result]:
    """σ(x) and σ'(x) in one pass over x.

    Bitwise equal to ``(sigmoid(x), sigmoid_derivative(x))``, in less time
    than the two calls: e^-|x| and 1/(1+e^-|x|) are computed once.

    Parameters
    ----------
    x : array_like
        As for :func:`sigmoid`.
    out : tuple of two ndarrays, optional
        ``(s_out, ds_out)``; either may be x itself.

    Returns
    -------
    (s, ds) : tuple
        σ(x) and σ'(x), each as :func:`sigmoid` would return it. Results
        of 64 KiB to 32 MiB each are the two halves of one block
        (``s.base is ds.base``), freed with the last of them, so that
        malloc keeps it for the next pair rather than giving it back to
        the kernel.
    """
    if type(x) is _ndarray and (size := x.size) < _SMALL and ((dtype := x.dtype) is _F64 or dtype is _F32):
        # Small arrays: a one-output ufunc that writes σ' into ds, an operand
        # it takes as an input (NumPy's two-output ufuncs cost 400 ns a call
        # more: see _kernels).
        # (The ufunc is looked up in each branch: an out= of the wrong kind
        # raises below without building it.)
        if out is None:
            ndim = x.ndim
            ds = _empty(size, dtype) if ndim == 1 else _empty_like(x)  # np.empty(size): half np.empty_like's cost
            s = (_UFUNCS.get("sigmoid_writing_derivative") or _load("sigmoid_writing_derivative"))(x, ds)
            return (s, ds) if ndim else (s, ds[()])
        if type(out) is tuple and len(out) == 2:
            s_out, ds_out = out
            if _ds_as_input(x, s_out, ds_out):
                # NumPy checks s (read-only, overlap with x); on an error the
                # general path raises it in fastsig's words.
                try:
                    return (_UFUNCS.get("sigmoid_writing_derivative") or _load("sigmoid_writing_derivative"))(
                        x, ds_out, s_out), ds_out
                except ValueError:
                    pass
    if (
        type(x) is _ndarray
        and ((dtype := x.dtype) is _F64 or dtype is _F32)
        and (
            out is None
            or (
                type(out) is tuple
                and len(out) == 2
                and _plain_out(out[0], x)
                and _plain_out(out[1], x)
                and out[0] is not out[1] and _apart(out[0], out[1])
            )
        )
    ):  # the common case, as in _unary
        size = x.size
        if size >= _SMALL and x.flags.c_contiguous and _thread_settings.threads is None:
            u = _PARALLEL_UFUNCS.get("sigmoid_and_derivative") or _load_parallel("sigmoid_and_derivative")
            return _allocating(u, x, 2) if out is None else u(x, out=out)
        threads = 0 if size < _SMALL else parallel_threads("sigmoid_and_derivative", size, dtype)
        if not threads:
            u = _UFUNCS.get("sigmoid_and_derivative") or _load("sigmoid_and_derivative")
            return _allocating(u, x, 2) if out is None else u(x, out=out)
        if _kernel_layout(x) and (out is None or all(_kernel_layout(o) and (o is x or _apart(o, x)) for o in out)):
            results = _result_pair(x.shape, dtype) if out is None else out
            run_kernel("sigmoid_and_derivative", threads, _c_order_1d(x), *(_c_order_1d(r) for r in results))
            return results
    return _call("sigmoid_and_derivative", (x,), out)


def sigmoid_backward(grad_output: ArrayLike, output: ArrayLike, /, out: np.ndarray | None = None) -> Result:
    """The backward step of a sigmoid layer: ``grad_output * output * (1 - output)``.

    ``output`` is the activation σ(x) saved in the forward pass, as in
    ``torch.ops.aten.sigmoid_backward``. Broadcasts as NumPy does.

    Parameters
    ----------
    grad_output, output : array_like
        float, integer or bool values. The result is float32 when both are
        float32, float16 when both are float16, float64 otherwise.
    out : ndarray, optional
        Where to write the result.

    Returns
    -------
    ndarray or scalar
    """
    if (
        out is None
        and type(grad_output) is _ndarray
        and type(output) is _ndarray
        and ((dtype := output.dtype) is _F64 or dtype is _F32)
        and grad_output.dtype is dtype
    ):  # the common case, as in _unary
        size = output.size
        if (size >= _SMALL and output.flags.c_contiguous and grad_output.flags.c_contiguous
                and _thread_settings.threads is None):
            u = _PARALLEL_UFUNCS.get("sigmoid_backward") or _load_parallel("sigmoid_backward")
            if grad_output.shape == output.shape and output.nbytes >= _POOL_MIN:
                return u(grad_output, output, out=_result_like(output))
            return u(grad_output, output)
        if size < _SMALL:  # NumPy broadcasts
            return (_UFUNCS.get("sigmoid_backward") or _load("sigmoid_backward"))(grad_output, output)
        if (
            grad_output.shape == output.shape
            and (threads := parallel_threads("sigmoid_backward", size, dtype))
            and output.flags.c_contiguous
            and grad_output.flags.c_contiguous
        ):
            result = _result_like(output)
            run_kernel("sigmoid_backward", threads, _c_order_1d(grad_output), _c_order_1d(output), _c_order_1d(result))
            return result
    return _call("sigmoid_backward", (grad_output, output), out)


def _check_in_place(x: Any, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"fastsig.{name} overwrites a NumPy array; got {type(x).__name__} "
            f"(fastsig.{name.rstrip('_')} returns a new one)"
        )
    if x.dtype.kind != "f" or x.dtype.itemsize > 8:
        raise TypeError(f"fastsig.{name} overwrites a float16, float32 or float64 array; got {x.dtype.name}")
    if not x.flags.writeable:
        raise ValueError(f"fastsig.{name}: the array is read-only")
    return x


def _in_place(name: str, x: Overwritten) -> Overwritten:
    if type(x) is _ndarray and ((dtype := x.dtype) is _F64 or dtype is _F32) and x.flags.writeable:
        size = x.size
        if size == 1:
            # NumPy's ufuncs take 250-500 ns more on one element in place
            # (its overlap checks) than the call and a copy back.
            x[...] = (_UFUNCS.get(name) or _load(name))(x)
        elif size < _SMALL:  # straight to the ufunc, as in _unary
            (_UFUNCS.get(name) or _load(name))(x, x)
        elif x.flags.c_contiguous and _thread_settings.threads is None:
            # Straight to the parallel ufunc, as _unary would go after
            # checks that x as out= passes by itself.
            (_PARALLEL_UFUNCS.get(name) or _load_parallel(name))(x, x)
        else:
            _unary(name, x, x)
    elif _tensors.involved((x,), None):
        return _tensors.in_place(name, x)
    else:
        _call(name, (_check_in_place(x, name + "_"),), x)
    return x


def sigmoid_(x: Overwritten, /) -> Overwritten:
    """σ(x) written over x (a float array or a view of one, a CPU tensor, GPU data); returns x."""
    return _in_place("sigmoid", x)


def sigmoid_derivative_(x: Overwritten, /) -> Overwritten:
    """σ'(x) written over x (a float array or a view of one, a CPU tensor, GPU data); returns x."""
    return _in_place("sigmoid_derivative", x)
