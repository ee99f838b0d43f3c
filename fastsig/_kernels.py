"""All the Numba machinery of fastsig lives here.

* the type-generic scalar functions (one ``@overload`` per operation that
  picks the float32 or float64 math of :mod:`fastsig._math`),
* the array loops (plain serial loops over contiguous 1-D memory) and the
  parallel kernels, which run those loops on one chunk per thread,
* the serial NumPy ufuncs, whose inner loops are ``@cfunc``s of the same
  shape (built on first use, so ``import fastsig`` compiles nothing, and
  read from the disk cache without setting up all of Numba),
* :func:`wants_parallel`, the one place that decides which of them runs,
* the thread settings.

The public functions in :mod:`fastsig._api` only resolve dtypes, shapes and
``out=`` and then call what :func:`wants_parallel` picks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import threading
from typing import Iterator

import numba
import numpy as np
from numba import njit, prange, types
from numba.core import cgutils, sigutils
from numba.core.ccallback import CFunc
from numba.core.compiler_lock import global_compiler_lock
from numba.extending import intrinsic, overload
from numba.np.ufunc import _internal
from numba.np.ufunc.ufuncbuilder import parse_identity

from . import _cache, _math

# --------------------------------------------------------------------------
# Type-generic scalar functions: float64 and float32 keep their own math.
# --------------------------------------------------------------------------


def sigmoid_scalar(x):  # pragma: no cover - replaced by the overload in jit code
    raise NotImplementedError("only callable from jitted code")


def sigmoid_derivative_scalar(x):  # pragma: no cover
    raise NotImplementedError("only callable from jitted code")


def sigmoid_and_derivative_scalar(x):  # pragma: no cover
    raise NotImplementedError("only callable from jitted code")


def sigmoid_backward_scalar(grad_output, output):  # pragma: no cover
    raise NotImplementedError("only callable from jitted code")


def _pick(f64, f32, *argtypes):
    """The float64 or float32 implementation for these argument types, else None."""
    if all(t == types.float64 for t in argtypes):
        return f64
    if all(t == types.float32 for t in argtypes):
        return f32
    return None


def _overload_unary(generic, f64, f32):
    @overload(generic, inline="always")
    def _overload(x):
        impl = _pick(f64, f32, x)
        return None if impl is None else (lambda x: impl(x))


_overload_unary(sigmoid_scalar, _math.sigmoid_f64, _math.sigmoid_f32)
_overload_unary(sigmoid_derivative_scalar, _math.sigmoid_derivative_f64, _math.sigmoid_derivative_f32)
_overload_unary(
    sigmoid_and_derivative_scalar,
    _math.sigmoid_and_derivative_f64,
    _math.sigmoid_and_derivative_f32,
)


@overload(sigmoid_backward_scalar, inline="always")
def _overload_backward(grad_output, output):
    impl = _pick(_math.sigmoid_backward_f64, _math.sigmoid_backward_f32, grad_output, output)
    return None if impl is None else (lambda grad_output, output: impl(grad_output, output))


# --------------------------------------------------------------------------
# Array loops (serial, contiguous 1-D in and out) and the parallel kernels,
# which split the arrays into one chunk per thread and run the serial loop
# on each. (A prange over the elements themselves compiled to a loop 30 %
# slower than the serial one for float32.)
#
# Every kernel is a module-level function that calls the others by their
# global names: a kernel made by a factory closing over a dispatcher is
# never found in the disk cache again (the closure's pickle holds a
# per-process id), and recompiling a parallel kernel costs a second.
# --------------------------------------------------------------------------

# error_model="numpy": a Python-style ZeroDivisionError check on the one
# division would stop LLVM from vectorizing the loop.
# nogil: dask's threaded scheduler and user threads run kernels side by side.
CACHE = _cache.enable()
JIT_OPTIONS = dict(error_model="numpy", nogil=True, cache=CACHE)


@intrinsic
def _address(typingctx, pointer):
    """The address a typed pointer holds, as an integer."""
    if not isinstance(pointer, types.CPointer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ptrtoint(args[0], context.get_value_type(types.intp))

    return types.intp(pointer), codegen


@intrinsic
def _data(typingctx, array, start):
    """A typed pointer to ``array[start]`` (a contiguous 1-D array)."""
    if not (isinstance(array, types.Array) and isinstance(start, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        data = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0]).data
        return builder.gep(data, [args[1]])

    return types.CPointer(array.dtype)(array, start), codegen


@intrinsic
def _stack_buffers(typingctx, count):
    """A tuple of ``count`` (a literal) float64 buffers of _BLOCK elements on the stack."""
    if not isinstance(count, types.IntegerLiteral):
        return None
    result_type = types.UniTuple(types.CPointer(types.float64), count.literal_value)

    def codegen(context, builder, signature, args):
        element = context.get_value_type(types.float64)
        buffers = [cgutils.alloca_once(builder, element, size=_BLOCK) for _ in range(count.literal_value)]
        return context.make_tuple(builder, result_type, buffers)

    return result_type(count), codegen


@intrinsic
def _store(typingctx, pointers, i, values):
    """``pointers[k][i] = values[k]`` for every k: a tuple of typed pointers and a tuple of values."""
    if not (isinstance(pointers, types.BaseTuple) and isinstance(values, types.BaseTuple)):
        return None
    if len(pointers) != len(values) or any(p.dtype != v for p, v in zip(pointers, values)):
        return None

    def codegen(context, builder, signature, args):
        pointer_tuple, index, value_tuple = args
        for k in range(len(values)):
            pointer = builder.extract_value(pointer_tuple, k)
            builder.store(builder.extract_value(value_tuple, k), builder.gep(pointer, [index]))
        return context.get_dummy_value()

    return types.none(pointers, i, values), codegen


@intrinsic
def _load(typingctx, pointers, i):
    """``(pointers[0][i], pointers[1][i], ...)`` for a tuple of float64 pointers."""
    if not (isinstance(pointers, types.UniTuple) and pointers.dtype == types.CPointer(types.float64)):
        return None
    result_type = types.UniTuple(types.float64, len(pointers))

    def codegen(context, builder, signature, args):
        pointer_tuple, index = args
        values = [
            builder.load(builder.gep(builder.extract_value(pointer_tuple, k), [index])) for k in range(len(pointers))
        ]
        return context.make_tuple(builder, result_type, values)

    return result_type(pointers, i), codegen


# Every CPU path on contiguous memory (the ufuncs' contiguous case, each
# chunk of the parallel kernels) runs the loops below. They take typed
# pointers and a length, not arrays, and are inlined into their callers:
# the ufunc loops are cfuncs, and arrays or a call to a compiled njit
# function would bring in Numba's runtime (NRT), which the fast cache load
# in _CachedLoop does not set up.
#
# Each kernel is two stages (see _math): terms, then result. A loop running
# them back to back per element is bound by latency, not by the FMA pipes:
# each element's chain is about 60 cycles (float32; twice that for
# float64) and ends in a 13-cycle division, and the instructions waiting
# on it fill the CPU's scheduler before the pipes are busy. So the loops
# run the stages _LAG elements apart: one iteration computes the terms of
# element j + _LAG and the result of element j, the terms parked in stack
# buffers in between, and a division starts as soon as its iteration does.
# The same bits. Measured on Zen 3, one core, against the loops run back to
# back: float32 12 % faster, float64 10-14 % (the fused float64 kernel 4 %,
# its second stage is most of it). Blocks of _BLOCK elements keep the
# buffers on the stack and in L1.
#
# What did not help: a third stage for the range reduction (in C, 22 %
# over back to back; in Numba no better than two), _LAG 8 or 32, and one
# buffer holding all values at a stride of _BLOCK instead of one buffer
# each: LLVM then reloaded 14 constants inside the float32 loop (14 %
# slower), a register-allocation accident worth re-checking with
# inspect_asm after any change here.
_BLOCK = 1024
_LAG = 16

# Stages of each kernel: (terms, result, how many values terms returns).
_STAGES = {
    ("sigmoid", types.float64): (_math.exp_f64, _math.sigmoid_f64_result, 3),
    ("sigmoid_derivative", types.float64): (_math.exp_f64, _math.sigmoid_derivative_f64_result, 3),
    ("sigmoid_and_derivative", types.float64): (_math.exp_f64, _math.sigmoid_and_derivative_f64_result, 3),
    ("sigmoid", types.float32): (_math.sigmoid_f32_terms, _math.sigmoid_f32_result, 1),
    ("sigmoid_derivative", types.float32): (_math.sigmoid_derivative_f32_terms, _math.sigmoid_derivative_f32_result, 2),
    ("sigmoid_and_derivative", types.float32): (
        _math.sigmoid_derivative_f32_terms, _math.sigmoid_and_derivative_f32_result, 2),
}


def _pipelined_loop(name: str, element_type):
    """``loop(x, outputs, n)`` for kernel ``name``: x a typed pointer,
    outputs a tuple of typed pointers, n the length.

    The loop closes over the stage dispatchers, which a cached kernel must
    not (see above); it is safe here because the loop is only ever inlined,
    never compiled or cached on its own: the cached kernels reach it through
    the generic stubs below, which pickle by name.
    """
    terms, result, width = _STAGES[name, element_type]

    # m > _LAG elements from lo; `parked` holds the terms of _LAG elements.
    @njit(inline="always")
    def block(x, outputs, parked, lo, m):
        for j in range(_LAG):
            _store(parked, j, terms(x[lo + j]))
        for j in range(m - _LAG):
            _store(parked, j + _LAG, terms(x[lo + j + _LAG]))
            _store(outputs, lo + j, result(x[lo + j], _load(parked, j)))
        for j in range(m - _LAG, m):
            _store(outputs, lo + j, result(x[lo + j], _load(parked, j)))

    # In place (x is outputs[0]), the block gets that one pointer twice:
    # LLVM vectorizes a loop over two pointers only after a runtime check
    # that they do not overlap, which an in-place call fails, dropping it
    # to scalar code (4x slower). A block too short to pipeline (only the
    # last can be) runs the stages back to back.
    def loop(x, outputs, n):
        parked = _stack_buffers(width)
        in_place = _address(x) == _address(outputs[0])
        for lo in range(0, n, _BLOCK):
            m = min(_BLOCK, n - lo)
            if m <= _LAG:
                for i in range(lo, lo + m):
                    _store(outputs, i, result(x[i], terms(x[i])))
            elif in_place:
                block(outputs[0], outputs, parked, lo, m)
            else:
                block(x, outputs, parked, lo, m)

    loop.__name__ = loop.__qualname__ = f"_{name}_{element_type}_loop"
    return njit(inline="always")(loop)


# The loops by dtype: what every CPU path runs on contiguous memory.
def sigmoid_loop(x, out, n):  # pragma: no cover - replaced by the overload in jit code
    raise NotImplementedError("only callable from jitted code")


def sigmoid_derivative_loop(x, out, n):  # pragma: no cover
    raise NotImplementedError("only callable from jitted code")


def sigmoid_and_derivative_loop(x, out_s, out_ds, n):  # pragma: no cover
    raise NotImplementedError("only callable from jitted code")


def _loops(name: str):
    return _pipelined_loop(name, types.float64), _pipelined_loop(name, types.float32)


def _overload_unary_loop(generic, name: str):
    f64_loop, f32_loop = _loops(name)

    @overload(generic, inline="always")
    def _overload(x, out, n):
        impl = _pick(f64_loop, f32_loop, x.dtype, out.dtype)
        return None if impl is None else (lambda x, out, n: impl(x, (out,), n))


_overload_unary_loop(sigmoid_loop, "sigmoid")
_overload_unary_loop(sigmoid_derivative_loop, "sigmoid_derivative")
_SIGMOID_AND_DERIVATIVE_LOOPS = _loops("sigmoid_and_derivative")


@overload(sigmoid_and_derivative_loop, inline="always")
def _overload_sigmoid_and_derivative_loop(x, out_s, out_ds, n):
    impl = _pick(*_SIGMOID_AND_DERIVATIVE_LOOPS, x.dtype, out_s.dtype, out_ds.dtype)
    return None if impl is None else (lambda x, out_s, out_ds, n: impl(x, (out_s, out_ds), n))


@njit(**JIT_OPTIONS)
def _sigmoid_backward_loop(grad_output, output, out):
    for i in range(out.size):
        out[i] = sigmoid_backward_scalar(grad_output[i], output[i])


# The chunk count (the thread count) is an argument: numba.get_num_threads()
# inside a kernel would make it uncachable.
@njit(inline="always")
def _chunk(size, chunks, c):
    step = (size + chunks - 1) // chunks
    return c * step, min(size, (c + 1) * step)


@njit(parallel=True, **JIT_OPTIONS)
def _sigmoid_parallel(chunks, x, out):
    for c in prange(chunks):
        lo, hi = _chunk(x.size, chunks, c)
        sigmoid_loop(_data(x, lo), _data(out, lo), hi - lo)


@njit(parallel=True, **JIT_OPTIONS)
def _sigmoid_derivative_parallel(chunks, x, out):
    for c in prange(chunks):
        lo, hi = _chunk(x.size, chunks, c)
        sigmoid_derivative_loop(_data(x, lo), _data(out, lo), hi - lo)


@njit(parallel=True, **JIT_OPTIONS)
def _sigmoid_and_derivative_parallel(chunks, x, out_s, out_ds):
    for c in prange(chunks):
        lo, hi = _chunk(x.size, chunks, c)
        sigmoid_and_derivative_loop(_data(x, lo), _data(out_s, lo), _data(out_ds, lo), hi - lo)


@njit(parallel=True, **JIT_OPTIONS)
def _sigmoid_backward_parallel(chunks, grad_output, output, out):
    for c in prange(chunks):
        lo, hi = _chunk(out.size, chunks, c)
        _sigmoid_backward_loop(grad_output[lo:hi], output[lo:hi], out[lo:hi])


#: The parallel kernels, called as ``PARALLEL[name](chunks, *inputs, *outputs)``.
PARALLEL = {
    "sigmoid": _sigmoid_parallel,
    "sigmoid_derivative": _sigmoid_derivative_parallel,
    "sigmoid_and_derivative": _sigmoid_and_derivative_parallel,
    "sigmoid_backward": _sigmoid_backward_parallel,
}


# --------------------------------------------------------------------------
# Serial NumPy ufuncs with our own inner loops.
#
# A real ``np.ufunc`` gives broadcasting, strides, casting, overlap handling
# and ``__array_ufunc__`` dispatch (dask, xarray) for the price of a C call.
# ``@vectorize`` builds one, but its loop calls the element function through
# Numba's calling convention once per element, which LLVM cannot vectorize
# (measured ≈ 3× slower than the loops below). So the inner loops are
# ``@cfunc``s with NumPy's loop signature, registered with
# ``numba.np.ufunc._internal.fromfunc``, the call ``@vectorize`` itself uses.
# --------------------------------------------------------------------------
def _loop_signature(element_type):
    """NumPy's inner-loop signature, with the data pointers typed.

    ``char **args`` is declared as ``element_type **``: the same ABI, and
    the loop indexes the operands without casts.
    """
    return types.void(
        types.CPointer(types.CPointer(element_type)),  # args: one pointer per operand
        types.CPointer(types.intp),  # dimensions: [n]
        types.CPointer(types.intp),  # steps: bytes between elements, per operand
        types.voidptr,  # data (unused)
    )


# NumPy checks the FPU flags after a ufunc loop and turns them into warnings
# (or errors under np.errstate). The sigmoid kernels raise none, but the
# backward step multiplies user values (inf * 0, underflow), so every loop
# clears the flags once at its end: fastsig never warns.
_feclearexcept = types.ExternalFunction("feclearexcept", types.int32(types.int32))
_FE_ALL_EXCEPT = {"x86_64": 0x3D, "AMD64": 0x3D, "i386": 0x3D, "i686": 0x3D}.get(platform.machine(), 0x1F)


# The loop factories close over module-level functions and ints only, which
# Numba's cache hashes the same way in every process (so cache=True works).
def _unary_loop(scalar, array_loop, itemsize):
    def loop(args, dims, steps, data):
        n = dims[0]
        x, out = args[0], args[1]
        sx, so = steps[0] // itemsize, steps[1] // itemsize
        if sx == 1 and so == 1:  # contiguous (in place too): the array loop
            array_loop(x, out, n)
        else:
            for i in range(n):
                out[i * so] = scalar(x[i * sx])
        _feclearexcept(_FE_ALL_EXCEPT)

    return loop


def _fused_loop(scalar, array_loop, itemsize):
    def loop(args, dims, steps, data):
        n = dims[0]
        x, out_s, out_ds = args[0], args[1], args[2]
        sx, ss, sd = steps[0] // itemsize, steps[1] // itemsize, steps[2] // itemsize
        if sx == 1 and ss == 1 and sd == 1:
            array_loop(x, out_s, out_ds, n)
        else:
            for i in range(n):
                out_s[i * ss], out_ds[i * sd] = scalar(x[i * sx])
        _feclearexcept(_FE_ALL_EXCEPT)

    return loop


def _binary_loop(scalar, array_loop, itemsize):  # array_loop: None (the loop is here)
    def loop(args, dims, steps, data):
        n = dims[0]
        a, b, out = args[0], args[1], args[2]
        sa, sb, so = steps[0] // itemsize, steps[1] // itemsize, steps[2] // itemsize
        if sa == 1 and sb == 1 and so == 1:
            for i in range(n):
                out[i] = scalar(a[i], b[i])
        else:
            for i in range(n):
                out[i * so] = scalar(a[i * sa], b[i * sb])
        _feclearexcept(_FE_ALL_EXCEPT)

    return loop


# name -> (loop factory, generic scalar, generic array loop, nin, nout)
_UFUNC_SPECS = {
    "sigmoid": (_unary_loop, sigmoid_scalar, sigmoid_loop, 1, 1),
    "sigmoid_derivative": (_unary_loop, sigmoid_derivative_scalar, sigmoid_derivative_loop, 1, 1),
    "sigmoid_and_derivative": (_fused_loop, sigmoid_and_derivative_scalar, sigmoid_and_derivative_loop, 1, 2),
    "sigmoid_backward": (_binary_loop, sigmoid_backward_scalar, None, 2, 1),
}


class _CachedLoop(CFunc):
    """A ``@cfunc`` that reads the on-disk cache without first setting up
    all of Numba's CPU target.

    Numba refreshes its target context (importing ``numba.np`` and
    registering every implementation: 0.4 s, most of a warm start) before it
    even looks in the cache, though a cached loop needs none of that. When
    the cache has the loop, this loads it directly; on a miss, or if Numba's
    internals ever differ, it compiles the usual way (which refreshes).
    """

    @global_compiler_lock
    def compile(self) -> None:
        try:
            cres = self._cache._load_overload(self._sig, self._targetdescr.target_context)
        except Exception:
            cres = None
        if cres is None:
            return super().compile()
        self._cache_hits += 1
        self._library = cres.library
        self._wrapper_name = cres.fndesc.llvm_cfunc_wrapper_name
        self._wrapper_address = self._library.get_pointer_to_function(self._wrapper_name)


def _compile_loop(loop, signature) -> CFunc:
    compiled = _CachedLoop(loop, sigutils.normalize_signature(signature), locals={}, options={"error_model": "numpy"})
    if CACHE:
        compiled.enable_caching()
    compiled.compile()
    return compiled


@functools.cache
def ufunc(name: str) -> np.ufunc:
    """The serial NumPy ufunc for ``name`` (float64 and float32 loops), compiled on first use."""
    make_loop, scalar, array_loop, nin, nout = _UFUNC_SPECS[name]
    loops, type_lists = [], []
    for element_type, dtype in ((types.float64, np.float64), (types.float32, np.float32)):
        itemsize = np.dtype(dtype).itemsize
        loop = make_loop(scalar, array_loop, itemsize)
        loop.__name__ = loop.__qualname__ = f"{name}_{np.dtype(dtype).name}_loop"
        loops.append(_compile_loop(loop, _loop_signature(element_type)))
        type_lists.append([np.dtype(dtype).num] * (nin + nout))
    doc = f"fastsig's serial NumPy ufunc for {name}; see fastsig.{name}."
    return _internal.fromfunc(
        name, doc, [loop.address for loop in loops], type_lists, nin, nout,
        [None] * len(loops), loops, parse_identity(None),
    )


# --------------------------------------------------------------------------
# Threads.
# --------------------------------------------------------------------------
# Only one Python thread at a time runs a parallel kernel: the others run
# the serial one. This keeps any Numba threading layer (workqueue aborts on
# concurrent use) safe and never oversubscribes the cores.
_parallel_lock = threading.Lock()
_MAX_THREADS = numba.config.NUMBA_NUM_THREADS
class _ThreadSettings(threading.local):
    threads: int | None = None  # the cap of a num_threads() block in this Python thread
    # (a class default: a missing attribute on a threading.local costs a raised
    # and caught AttributeError per call)


_settings = _ThreadSettings()


def _clamp_threads(n: int | str) -> int:
    if int(n) < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    return min(int(n), _MAX_THREADS)


def _env_threads() -> int:
    """FASTSIG_NUM_THREADS, else every core Numba may use."""
    value = os.environ.get("FASTSIG_NUM_THREADS")
    return _clamp_threads(value) if value else _MAX_THREADS


# Resolved once (read at import, like OMP_NUM_THREADS): each call reads one
# number, not the environment.
_default_threads = _env_threads()


def get_num_threads() -> int:
    """Threads that large arrays are spread over in this Python thread."""
    n = _settings.threads
    return _default_threads if n is None else n


def set_num_threads(n: int | None) -> None:
    """Cap the threads fastsig uses for large arrays (``None``: back to the default).

    Applies to every Python thread. The default is ``FASTSIG_NUM_THREADS``
    when set (read at import), else all cores. See :func:`num_threads` for a
    scoped cap.
    """
    global _default_threads
    _default_threads = _env_threads() if n is None else _clamp_threads(n)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Cap the threads of fastsig calls made in this Python thread, within a ``with`` block."""
    previous = _settings.threads
    _settings.threads = _clamp_threads(n)
    try:
        yield
    finally:
        _settings.threads = previous


# --------------------------------------------------------------------------
# Target choice.
# --------------------------------------------------------------------------
# From this many elements the parallel kernel beats one thread. Measured on
# 2 cores (parallel time / serial time, float32 and float64): 0.7-0.9 and
# 0.6 at 4096 elements, 0.6-0.7 and 0.6 at 8192, 0.5-0.6 at 32768; 8192
# leaves a margin for a busy second core. The backward step is two
# multiplies per element and memory-bound: there, waking the other thread
# pays off only from about a million elements (0.6x the baseline at 1e5
# with two threads, 3.2x at 1e7).
PARALLEL_MIN_SIZE = {
    "sigmoid": 8192,
    "sigmoid_derivative": 8192,
    "sigmoid_and_derivative": 8192,
    "sigmoid_backward": 1 << 20,
}


def wants_parallel(name: str, size: int) -> bool:
    """Should an operation on this many elements run the parallel kernel?

    The one place that chooses between the parallel kernel and the serial
    ufunc; the caller still takes the ufunc when the operands are not
    contiguous in one layout.
    """
    return size >= PARALLEL_MIN_SIZE[name] and get_num_threads() > 1


def run_kernel(name: str, *arrays: np.ndarray) -> None:
    """Run kernel ``name`` on contiguous 1-D arrays (inputs, then outputs), in
    parallel unless another Python thread already is: then with the serial
    ufunc in this one."""
    if _parallel_lock.acquire(blocking=False):
        try:
            # One chunk per thread: a prange over `threads` chunks uses at most
            # that many of Numba's threads, so Numba's own setting stays as is.
            PARALLEL[name](get_num_threads(), *arrays)
        finally:
            _parallel_lock.release()
    else:
        SERIAL[name](*arrays)


def _run_serial(name: str, *arrays: np.ndarray) -> None:
    nin = _UFUNC_SPECS[name][3]
    ufunc(name)(*arrays[:nin], out=arrays[nin:])


#: The single-threaded kernels, called like PARALLEL's (inputs, then outputs):
#: the serial ufunc's loop on the same contiguous arrays.
SERIAL = {name: functools.partial(_run_serial, name) for name in _UFUNC_SPECS}
