"""All the Numba machinery of fastsig lives here.

* the array loops over contiguous 1-D memory, one per operation and dtype:
  the scalar math of :mod:`fastsig._math` run as explicit vector code (see
  :mod:`fastsig._lanes`),
* the serial NumPy ufuncs, whose inner loops are ``@cfunc``s that call
  those loops (compiled as cfuncs too) on contiguous operands at once and
  on strided ones block by block through the stack (built on first use, so
  ``import fastsig`` compiles nothing, and read from the disk cache without
  setting up all of Numba),
* the parallel ufuncs (:func:`parallel_ufunc`), whose inner loop splits a
  large operand range into pieces itself and hands them to the threading
  layer's parallel_for (or, with FASTSIG_WORKERS=1 and in a forked child,
  to fastsig's own worker threads: :mod:`fastsig._workers`): what the
  public functions call for large C-contiguous arrays,
* the parallel kernels (``prange``), which run a ufunc's inner loop on one
  chunk per thread of 1-D arrays or runs of rows of 2-D ones, for the
  other layouts,
* :func:`parallel_threads`, the one place in Python that decides between
  the serial ufunc and the parallel kernels (the parallel ufuncs' loops
  apply the thresholds of :func:`parallel_min_size` in compiled code),
* the thread settings.

The public functions in :mod:`fastsig._api` only resolve dtypes, shapes and
``out=`` and then call what :func:`parallel_threads` picks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
import threading
from types import FunctionType
from typing import Iterator, NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils, sigutils
from numba.core.ccallback import CFunc
from numba.core.compiler_lock import global_compiler_lock
from numba.extending import intrinsic
from numba.np.ufunc import _internal
from numba.np.ufunc.ufuncbuilder import parse_identity

from . import _cache, _lanes, _math, _workers

# --------------------------------------------------------------------------
# Array loops (serial, contiguous 1-D in and out), the ufunc loops that run
# them, and the parallel kernels, which split the arrays into one chunk per
# thread (or runs of rows) and call the ufunc loop on each. (A prange over
# the elements themselves compiled to a loop 30 % slower than the serial
# one for float32.)
#
# The ufunc loops and array loops of each operation and dtype are copies
# of one template function each, with its own globals: the dtype's array
# loop, or the backward step's scalar function (see _specialize). Not closures: a kernel closing over a
# dispatcher is never found in the disk cache again (the closure's pickle
# holds a per-process id). Not @overload(inline="always") stubs that pick
# the dtype while typing, as before: typed inlining of a whole loop made a
# cold compile 4x slower (13 s for the float64 sigmoid loop alone).
# --------------------------------------------------------------------------

# error_model="numpy": a Python-style ZeroDivisionError check on the one
# division would stop LLVM from vectorizing the loop.
# nogil: dask's threaded scheduler and user threads run kernels side by side.
CACHE = _cache.enable()
JIT_OPTIONS = dict(error_model="numpy", nogil=True, cache=CACHE)


@intrinsic
def _address(typingctx, pointer):
    """The address a pointer (typed, or void*) holds, as an integer."""
    if not isinstance(pointer, (types.CPointer, types.RawPointer)):
        return None

    def codegen(context, builder, signature, args):
        return builder.ptrtoint(args[0], context.get_value_type(types.intp))

    return types.intp(pointer), codegen


def _aligned_alloca(builder, element):
    """_BLOCK elements on the stack, aligned to a cache line, so that no
    512-bit load or store of them straddles two lines."""
    buffer = cgutils.alloca_once(builder, element, size=_BLOCK)
    buffer.align = 64
    return buffer


@intrinsic
def _stack_buffers_like(typingctx, pointers):
    """A tuple of buffers of _BLOCK elements on the stack, one per pointer of the tuple."""
    if not (isinstance(pointers, types.UniTuple) and isinstance(pointers.dtype, types.CPointer)):
        return None

    def codegen(context, builder, signature, args):
        element = context.get_value_type(pointers.dtype.dtype)
        buffers = [_aligned_alloca(builder, element) for _ in range(len(pointers))]
        return context.make_tuple(builder, pointers, buffers)

    return pointers(pointers), codegen


@intrinsic
def _stack_buffer_like(typingctx, pointer):
    """A buffer of _BLOCK elements of the pointer's type on the stack."""
    if not isinstance(pointer, types.CPointer):
        return None

    def codegen(context, builder, signature, args):
        return _aligned_alloca(builder, context.get_value_type(pointer.dtype))

    return pointer(pointer), codegen


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
    """``(pointers[0][i], pointers[1][i], ...)`` for a tuple of float pointers."""
    if not (isinstance(pointers, types.UniTuple) and isinstance(pointers.dtype, types.CPointer)):
        return None
    result_type = types.UniTuple(pointers.dtype.dtype, len(pointers))

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
# Both dtypes run the math of _math as explicit vector code (_lanes): the
# float64 kernels look up 2**(j/8) in a table of 8, the float32 ones
# 2**(j/16) in a table of 16, which a scalar loop's vectorizer turns into
# gathers or gives up on (float64: 3.3 ns per element, 5x slower), and
# which is one permute per vector here. A step is _BLOCKS[dtype] vectors of
# 16 lanes, their instructions interleaved, so that each lane's long chain
# of dependent operations (exp, reciprocal, Newton step, quotients) has
# independent work beside it. The first pass computes the lanes in range
# (float64: |x| <= NORMAL_RANGE_F64, float32: FAST_RANGE_F32; NaN inside)
# and stores those only; a second pass, one vector at a time and only on
# the vectors with lanes outside, computes them from x, which is still
# intact for them in place (float64: the full kernels; float32: the wide
# functions in float64 lanes, or the cheap saturated values). (The second
# pass over whole steps, Zen 5, one core: 1 % -inf 1.13 against 0.95
# ns/element, |x| in [600, 708] 2.8 against 1.8.)
_BLOCK = 1024  # elements of the stack buffers

# Vectors of 16 lanes per step (a float64 vector is two registers), per
# kernel and dtype. More than fit the registers can still pay (the spills
# go to L1, and the chains of more vectors overlap) where a 512-bit
# operation is one pass (Zen 5); on Zen 4, which splits it in two, the
# spills cost more. One core, 16384 elements, σ / σ' / fused ns per
# element. Zen 5: float32 4 vectors 0.287 / 0.358 / 0.410, 6: 0.273 /
# 0.347 / 0.381, 8: 0.271 / 0.327 / 0.376, 12: 0.286 / 0.396 / 0.413;
# float64 1: 0.646 / 0.717 / 0.967, 2: 0.626 / 0.680 / 0.842, 3: 0.554 /
# 0.614 / 0.743, 4: 0.548 / 0.607 / 0.749, 6: 0.561 / 0.626 / 0.874, 8:
# 0.656 / 0.665 / 0.891. Zen 4 (best of several runs, the host noisy):
# float64 2: 0.98-1.01 / 1.07-1.10 / 1.34-1.36, 3: 0.94-0.98 / 1.04-1.08 /
# 1.51-1.58, 4: 1.03-1.35 / 1.06-1.11 / 1.44-1.48; float32 4 and 8 level.
# The fused float64 kernel keeps the most values live: 2 vectors on Zen 4
# (Zen 5: 12 % slower than 3, its best). Intel Xeon (eleventh session, one
# process, round-robin): float64 1-4 and float32 2-8 vectors within 5 %,
# and "AVX2 code" as fast as AVX-512 (AVX-512 code in fact: NUMBA_CPU_NAME
# alone leaves the host's features on; real AVX2 below). (float64 σ 0.89
# ns/element, 0.67 with its division replaced by a multiply; the
# division-free reciprocals tried, Newton steps from a float32 division or a bit-trick guess, 0.82-0.96; the fifteenth
# session's vrcp14pd and one Newton step, _math.reciprocal, 13-22 % faster
# than the division, with steps of 2-4 vectors (fused too) still level.
# Seventeenth session, A/B of package copies, one core, 16,384 and 1e5
# elements, six runs: float32 6 vectors against 8, σ 0.94-1.02, σ' 0.92-1.00
# (1.15 once), fused 0.88-1.02; float64 2-4 level. 8 kept: Zen 5's σ' is 6 %
# slower with 6.)
#
# Without AVX-512 (256-bit registers, 16 of them: a vector of 16 float32
# lanes is two, of float64 four) fewer vectors: on Zen 3 (AVX2, one core,
# 16,384 elements, package copies side by side, ns per element σ / σ' /
# fused) float32 8 vectors 1.01-1.04 / 1.18-1.21 / 1.31-1.35 (a third of
# the instructions of a step were spills), 4: 0.94 / 1.12-1.40 / 1.21-1.31,
# 2: 0.87-0.88 / 1.13-1.27 / 1.16-1.25, 1: 1.05-1.15 / 1.26-1.38 / 1.34-1.47;
# float64 3: 1.99-2.12 / 2.18-2.24 / 2.68-3.06, 2: 1.97-2.03 / 2.15-2.24 /
# 2.69-3.11, 1: 1.91-1.98 / 2.06-2.11 / 2.97-3.47.
_BLOCKS_BY_REGISTERS = {  # (float64, float32) vectors per step
    "512-bit": {"sigmoid": (3, 8), "sigmoid_derivative": (3, 8), "sigmoid_and_derivative": (2, 8)},
    "256-bit": {"sigmoid": (1, 2), "sigmoid_derivative": (1, 2), "sigmoid_and_derivative": (2, 2)},
}
_BLOCKS = {
    (name, element_type): blocks
    for name, (blocks_f64, blocks_f32) in _BLOCKS_BY_REGISTERS["512-bit" if _math.cpu_has_avx512() else "256-bit"].items()
    for element_type, blocks in ((types.float64, blocks_f64), (types.float32, blocks_f32))
}
_STEPS = {key: blocks * _lanes.LANES for key, blocks in _BLOCKS.items()}  # elements per step

_FLOAT32_RESULTS = {
    "sigmoid": (_math.sigmoid_f32_from_pair,),
    "sigmoid_derivative": (_math.sigmoid_derivative_f32_from_pair,),
    "sigmoid_and_derivative": (_math.sigmoid_f32_from_pair, _math.sigmoid_derivative_f32_from_pair),
}
_FLOAT32_SATURATED = {
    _math.sigmoid_f32_from_pair: _math.sigmoid_f32_saturated,
    _math.sigmoid_derivative_f32_from_pair: _math.sigmoid_derivative_f32_saturated,
}
_FLOAT32_WIDE = {  # the same for the lanes outside the fast range
    "sigmoid": (_math.sigmoid_f32_wide,),
    "sigmoid_derivative": (_math.sigmoid_derivative_f32_wide,),
    "sigmoid_and_derivative": (_math.sigmoid_f32_wide, _math.sigmoid_derivative_f32_wide),
}
# float64: stage 2 of each kernel (after _math.exp_f64), all outputs at once.
_FLOAT64_RESULTS = {
    "sigmoid": _math.sigmoid_f64_result,
    "sigmoid_derivative": _math.sigmoid_derivative_f64_result,
    "sigmoid_and_derivative": _math.sigmoid_and_derivative_f64_result,
}
_OUTPUTS = {name: len(results) for name, results in _FLOAT32_RESULTS.items()}  # per kernel with an array loop


def _lane_operands(x, outputs, count: int, lo) -> bool:
    """Are these the types the lane intrinsics take: a float32 or float64
    pointer, a tuple of ``count`` more, an integer index?"""
    return (isinstance(x, types.CPointer) and x.dtype in _ITEMSIZE and isinstance(outputs, types.UniTuple)
            and len(outputs) == count and outputs.dtype == x and isinstance(lo, types.Integer))


def _load_step(builder, pointer, output_pointers, index, count: int, blocks: int):
    """(the ``blocks`` vectors of x from index, the outputs' addresses there):
    what every lane intrinsic starts from."""
    values = _lanes.load(builder, builder.gep(pointer, [index]), blocks)
    targets = [builder.gep(builder.extract_value(output_pointers, k), [index]) for k in range(count)]
    return values, targets


def _no_lanes(builder, bits):
    """Is ``bits`` (an integer of mask bits, as mask_bits or vector_bits make them) 0?"""
    return builder.icmp_unsigned("==", bits, ir.Constant(bits.type, 0))


def _in_range_lanes(compute, bound: float, count: int, blocks: int, prefetch_ahead: int = 0):
    """An intrinsic ``lanes(x, outputs, lo, streaming)``: ``compute`` (Lanes
    of x -> a list of ``count`` results) on the ``blocks`` * 16 elements of
    x from lo, into outputs[k] where |x| <= bound (NaN too), leaving the
    other lanes untouched; returns an int64 with bit b set where vector b
    (16 lanes) has such lanes, for the second pass. ``streaming`` (a
    boolean): when every lane is in the range, the results go out as
    non-temporal stores (outputs[k] + lo must then be 64-byte aligned).
    ``prefetch_ahead``: if not 0, the step also prefetches the lines of x
    that many bytes further on (see _PREFETCH_AHEAD)."""
    assert blocks <= 64, "one bit per vector in an int64"

    @intrinsic
    def lanes(typingctx, x, outputs, lo, streaming):
        if not (_lane_operands(x, outputs, count, lo) and isinstance(streaming, types.Boolean)):
            return None

        def codegen(context, builder, signature, args):
            pointer, output_pointers, index, stream = args
            values, targets = _load_step(builder, pointer, output_pointers, index, count, blocks)
            if prefetch_ahead:
                _lanes.prefetch(builder, builder.gep(pointer, [index]), prefetch_ahead,
                               blocks * _lanes.LANES * _ITEMSIZE[x.dtype])
            inside = _lanes.invert(abs(values) > bound)  # NaN inside (see _math)
            outside = _lanes.vector_bits(_lanes.invert(inside))
            results = compute(values)
            # Plain stores where every lane is in range: a masked store to a
            # line not in the cache took 2-3x as long (Zen 5, float64, 1e7).
            with builder.if_else(_no_lanes(builder, outside)) as (every_lane, some_lanes):
                with every_lane:
                    with builder.if_else(stream) as (streamed, stored):
                        with streamed:
                            for result, target in zip(results, targets):
                                _lanes.store_streaming(result, target)
                        with stored:
                            for result, target in zip(results, targets):
                                _lanes.store(result, target)
                with some_lanes:
                    for result, target in zip(results, targets):
                        _lanes.store_where(result, target, inside)
            return outside

        return types.int64(x, outputs, lo, streaming), codegen

    return lanes


def _float32_lanes(name: str, blocks: int, prefetch_ahead: int = 0):
    """The in-range pass of float32 kernel ``name`` (see _in_range_lanes)."""
    emit_terms = _lanes.for_lanes(_math.exp_pair_f32)
    emit_results = [_lanes.for_lanes(result) for result in _FLOAT32_RESULTS[name]]

    def compute(values):
        terms = emit_terms(values)
        return [emit(values, terms) for emit in emit_results]

    return _in_range_lanes(compute, _math.FAST_RANGE_F32, len(emit_results), blocks, prefetch_ahead)


# The steps of the main pass prefetch x this many bytes ahead, both dtypes
# (software prefetch; a read hint, as fast as a write hint in place). Intel Xeon, 1e7 elements in place:
# one thread 1.19-1.33 -> 0.85-0.97 ns/element (0.91 on data in the cache: the
# hardware prefetchers alone left it waiting for memory), two threads 0.48-0.56
# -> 0.42-0.48; 2048 bytes 0.91 / 0.43, 8192 and 16384 as 4096; on data in
# the cache no change. float32 (steps of 8 lines), two threads, 1e7: in place
# -4 to -11 %, allocating -6 to -16 % since its kernel no longer divides
# (with the division: +1-3 % in place), 8192 bytes as 4096; in the cache
# +1 %.
_PREFETCH_AHEAD = 4096


def _float64_lanes(name: str, blocks: int, prefetch_ahead: int = 0):
    """The in-range pass of float64 kernel ``name``: the normal range (see
    _in_range_lanes and _math)."""
    emit_terms = _lanes.for_lanes(_math.exp_f64)
    emit_results = _lanes.for_lanes(_FLOAT64_RESULTS[name])
    return _in_range_lanes(lambda values: list(emit_results(values, emit_terms(values, False), False)),
                           _math.NORMAL_RANGE_F64, _OUTPUTS[name], blocks, prefetch_ahead)


def _float64_outside_lanes(name: str, blocks: int = 1):
    """An intrinsic ``outside_lanes(x, outputs, lo)``: the full kernels of
    float64 kernel ``name`` for the lanes of x from lo beyond the normal
    range (|x| > NORMAL_RANGE_F64, inf), into outputs[k]."""
    emit_terms = _lanes.for_lanes(_math.exp_f64)
    emit_results = _lanes.for_lanes(_FLOAT64_RESULTS[name])
    count = _OUTPUTS[name]

    @intrinsic
    def outside_lanes(typingctx, x, outputs, lo):
        if not _lane_operands(x, outputs, count, lo):
            return None

        def codegen(context, builder, signature, args):
            pointer, output_pointers, index = args
            values, targets = _load_step(builder, pointer, output_pointers, index, count, blocks)
            pending = abs(values) > _math.NORMAL_RANGE_F64  # not NaN
            results = emit_results(values, emit_terms(values, True), True)
            for target, result in zip(targets, results):
                _lanes.store_where(result, target, pending)
            return context.get_dummy_value()

        return types.none(x, outputs, lo), codegen

    return outside_lanes


def _float32_outside_lanes(name: str, blocks: int = 1):
    """An intrinsic ``outside_lanes(x, outputs, lo)``: kernel ``name`` for
    the lanes of x from lo outside the fast range (|x| > FAST_RANGE_F32,
    inf), into outputs[k]. Where every such lane
    saturates (σ = 1 or 0, σ' = 0, for every output: see _math), a cheap
    pass stores those values; else the wide functions of _math compute all
    of them in float64 lanes (running both would cost more than the wide
    pass alone). Run only on vectors with such lanes, so that the common
    case pays nothing for it."""
    emit_saturated = [_lanes.for_lanes(_FLOAT32_SATURATED[result]) for result in _FLOAT32_RESULTS[name]]
    emit_wide = [_lanes.for_lanes(result) for result in _FLOAT32_WIDE[name]]

    @intrinsic
    def outside_lanes(typingctx, x, outputs, lo):
        if not _lane_operands(x, outputs, len(emit_wide), lo):
            return None

        def codegen(context, builder, signature, args):
            pointer, output_pointers, index = args
            values, targets = _load_step(builder, pointer, output_pointers, index, len(emit_wide), blocks)
            pending = abs(values) > _math.FAST_RANGE_F32  # not NaN (see _math)
            saturations = [emit(values) for emit in emit_saturated]
            every_output_known = saturations[0][0]
            for known, _ in saturations[1:]:
                every_output_known = every_output_known & known
            unknown = _lanes.mask_bits(pending & _lanes.invert(every_output_known))
            with builder.if_else(_no_lanes(builder, unknown)) as (saturated, wide):
                with saturated:
                    for target, (known, value) in zip(targets, saturations):
                        _lanes.store_where(_lanes.select(known, value, values), target, pending)
                with wide:
                    # Every result is computed before the first store: in
                    # place, x is one of the outputs.
                    results = [emit(values) for emit in emit_wide]
                    for target, result in zip(targets, results):
                        _lanes.store_where(result, target, pending)
            return context.get_dummy_value()

        return types.none(x, outputs, lo), codegen

    return outside_lanes


@intrinsic
def _store_fence(typingctx):
    """Order the non-temporal stores before everything after (sfence; x86-64
    only, elsewhere the hint is ignored and nothing is needed)."""

    def codegen(context, builder, signature, args):
        function_type = ir.FunctionType(ir.VoidType(), [])
        builder.call(cgutils.get_or_insert_function(builder.module, function_type, "llvm.x86.sse.sfence"), [])
        return context.get_dummy_value()

    return types.none(), codegen


if platform.machine() in ("x86_64", "AMD64"):
    _STREAMING = True

    @njit(inline="always")
    def _fence_streaming_stores():
        _store_fence()
else:
    _STREAMING = False

    @njit(inline="always")
    def _fence_streaming_stores():
        pass


# From this many elements (one thread's share: 8 MiB of output, half the
# L3 cache with the input), out-of-place float32 results are written with
# non-temporal stores: a result that large leaves the cache before anyone
# reads it, and a plain store first reads each line in (12 bytes of
# traffic per element instead of 8). float64: see _STREAMING_MIN.
_STREAMING_MIN = {types.float32: 1 << 21, types.float64: 1 << 21}
#: From this many elements the loops align their steps (see _array_loop):
#: below, the head's partial step costs more than it saves (float32, 2048
#: elements 32 bytes into a line, one core: 5 % slower aligned).
_ALIGN_MIN = 8192
_ITEMSIZE = {types.float32: 4, types.float64: 8}


def _array_loop(name: str, element_type):
    """``loop(x, outputs, n)`` for kernel ``name`` on typed pointers of
    ``element_type``: x, a tuple of outputs, the length."""
    single = element_type == types.float32
    in_range, outside_range = (_float32_lanes, _float32_outside_lanes) if single else (_float64_lanes, _float64_outside_lanes)
    lanes = in_range(name, _BLOCKS[name, element_type], _PREFETCH_AHEAD)
    one_vector, one_vector_outside = in_range(name, 1), outside_range(name)  # (partial steps: a stack copy)
    step_size = _STEPS[name, element_type]
    itemsize = _ITEMSIZE[element_type]
    streaming_min = _STREAMING_MIN[element_type]

    # Fewer than a step's elements from lo: the vector code, one vector at
    # a time, on a zero-padded copy on the stack (the scalar functions take
    # ~5 ns per element, a quarter of a 1000-element call).
    @njit(inline="always")
    def partial_step(x, outputs, lo, m):
        padded = _stack_buffer_like(x)
        results = _stack_buffers_like(outputs)
        for j in range(m):
            padded[j] = x[lo + j]
        for j in range(m, step_size):
            padded[j] = 0
        for block in range(0, m, _lanes.LANES):
            if one_vector(padded, results, block, False) != 0:
                one_vector_outside(padded, results, block)
        for j in range(m):
            _store(outputs, lo + j, _load(results, j))

    # The steps start where the first output is 64-byte aligned (from
    # _ALIGN_MIN elements): NumPy's large arrays start 16, 32 or 48 bytes
    # into a line, and a vector that straddles two lines costs two accesses.
    # One core, 1e5 elements 16 or 32 bytes into a line, aligned against
    # not: float32 σ 0.4-1.3 % faster, the fused kernel 6.5-9 %; float64
    # σ 1.4-2.8 %, fused 2-5.6 %; level for arrays already aligned.
    # Streaming needs every output aligned at the same element. The
    # elements before `start` and after the last whole step go through
    # partial steps, at one call site: each of the kernels appears once in
    # the loop, as every copy of the vector code adds compile time.
    def loop(x, outputs, n):
        first = _address(outputs[0])
        last = _address(outputs[-1])
        aligned = n >= _ALIGN_MIN and first % itemsize == 0
        start = ((64 - first % 64) % 64) // itemsize if aligned else 0
        streaming = (_STREAMING and n >= streaming_min and aligned and last % 64 == first % 64
                     and first != _address(x) and last != _address(x))
        whole = n - (n - start) % step_size
        for i in range((whole - start) // step_size):
            step = start + i * step_size
            outside = lanes(x, outputs, step, streaming)
            if outside != 0:  # the second pass, vector by vector: where it has lanes to do
                for vector in range(step_size // _lanes.LANES):
                    if (outside >> vector) & 1:
                        one_vector_outside(x, outputs, step + vector * _lanes.LANES)
        if streaming:
            _fence_streaming_stores()
        for part in range(2):  # the head, then the tail
            lo = 0 if part == 0 else whole
            m = start if part == 0 else n - whole
            if m > 0:
                partial_step(x, outputs, lo, m)

    loop.__name__ = loop.__qualname__ = f"_{name}_{element_type}_loop"
    return njit(inline="always")(loop)


#: The array loops by operation and dtype: what every CPU path runs on contiguous memory.
_ARRAY_LOOPS = {(name, t): _array_loop(name, t) for name in _OUTPUTS for t in (types.float64, types.float32)}

#: The scalar functions of the backward step (its ufunc loops have no array loop).
_SCALARS = {
    ("sigmoid_backward", types.float64): _math.sigmoid_backward_f64,
    ("sigmoid_backward", types.float32): _math.sigmoid_backward_f32,
}

# The global names a template uses for what _specialize binds. (Stand-ins
# here, so that the module reads as Python: the templates are never run.)
ARRAY_LOOP = SCALAR = None
ITEMSIZE = OPERANDS = INPUTS = S_AT = DS_AT = 1


def _specialize(template, name: str, element_type):
    """A copy of ``template`` named after the operation and dtype, whose
    globals ARRAY_LOOP, SCALAR and ITEMSIZE are those of that kernel.

    Numba resolves globals at compile time (an int becomes a constant, an
    inline njit function is inlined), and the disk cache tells the copies
    apart by their qualified names.
    """
    spec = _UFUNC_SPECS[name]
    bound = dict(template.__globals__)
    bound.update(
        ARRAY_LOOP=_ARRAY_LOOPS.get((name, element_type)),
        SCALAR=_SCALARS.get((name, element_type)),
        ITEMSIZE=8 if element_type == types.float64 else 4,
        OPERANDS=spec.nin + spec.nout,
        INPUTS=spec.nin,
        S_AT=spec.s_at,
        DS_AT=spec.ds_at,
    )
    copy = FunctionType(template.__code__, bound, template.__name__)
    copy.__qualname__ = copy.__name__ = f"{name}_{element_type}{template.__name__}"
    copy.__module__ = template.__module__
    return copy


# --------------------------------------------------------------------------
# The machinery of the parallel ufunc loops (see _parallel_ufunc_loop).
# --------------------------------------------------------------------------
# Offsets in a loop's config (an int64 array; its address is the loop's data).
_LOOP_AT, _LOOP_DATA_AT, _MIN_SIZE_AT, _ADAPTER_AT, _SHARED_AT, _PARALLEL_FOR_AT, _WORKERS_AT = range(7)
_INTP = ir.IntType(64)
_BYTES = ir.IntType(8).as_pointer()
_RAW_LOOP = ir.FunctionType(ir.VoidType(), [_BYTES.as_pointer(), _INTP.as_pointer(), _INTP.as_pointer(), _BYTES])


def _int64_at(builder, pointer, k: int):
    return builder.gep(builder.bitcast(pointer, _INTP.as_pointer()), [ir.Constant(_INTP, k)])


def _entry_intrinsic(name: str, result_type, operate):
    """An intrinsic ``name(address, k)``: ``operate(builder, entry)`` on
    entry k (a literal) of the int64 array at ``address`` (a void pointer
    or an integer); its value, of ``result_type`` (None: nothing)."""

    def typer(typingctx, address, k):
        if not isinstance(k, types.IntegerLiteral):
            return None

        def codegen(context, builder, signature, args):
            base = args[0] if isinstance(address, types.RawPointer) else builder.inttoptr(args[0], _BYTES)
            value = operate(builder, _int64_at(builder, base, k.literal_value))
            return context.get_dummy_value() if value is None else value

        return (result_type or types.none)(address, k), codegen

    typer.__name__ = typer.__qualname__ = name
    return intrinsic(typer)


def _compare_exchange(builder, entry):
    swapped = builder.cmpxchg(entry, ir.Constant(_INTP, 0), ir.Constant(_INTP, 1), "acquire", "monotonic")
    return builder.extract_value(swapped, 1)


#: A loop config's entry (address: the loop's data).
_config = _entry_intrinsic("_config", types.int64, lambda builder, entry: builder.load(entry))
#: An entry of _SHARED, read atomically (address: an integer).
_load_int64 = _entry_intrinsic("_load_int64", types.int64, lambda builder, entry: builder.load_atomic(entry, "monotonic", 8))
#: Set an entry of _SHARED from 0 to 1 atomically: did it?
_try_lock = _entry_intrinsic("_try_lock", types.boolean, _compare_exchange)
def _release(builder, entry):
    builder.store_atomic(ir.Constant(_INTP, 0), entry, "release", 8)


#: Set it back to 0 (release).
_unlock = _entry_intrinsic("_unlock", None, _release)


@intrinsic
def _call_raw_loop(typingctx, address, data, args, dims, steps):
    """Call the ufunc inner loop at ``address`` (with its ``data``) on NumPy's own arguments."""

    def codegen(context, builder, signature, a):
        address_value, data_value, args_value, dims_value, steps_value = a
        loop = builder.inttoptr(address_value, _RAW_LOOP.as_pointer())
        builder.call(loop, [builder.bitcast(args_value, _BYTES.as_pointer()), dims_value, steps_value,
                            builder.inttoptr(data_value, _BYTES)])
        return context.get_dummy_value()

    return types.none(address, data, args, dims, steps), codegen


@intrinsic
def _run_chunks(typingctx, parallel_for, adapter, loop, loop_data, chunks, args, steps, n, operands):
    """Run the ufunc inner loop ``loop`` on ``chunks`` chunks of the n
    elements of NumPy's operands ``args`` (with byte ``steps``) through the
    threading layer's ``parallel_for``, which calls ``adapter`` (see
    _chunk_adapter) with each chunk's operand pointers: the chunk's bytes
    as the steps it offsets them by, then the elements' own steps, and in
    dims (after its own count) the chunk length, the end of the first
    operand, the loop and its data."""
    if not isinstance(operands, types.IntegerLiteral):
        return None
    count = operands.literal_value

    def codegen(context, builder, signature, a):
        parallel_for_value, adapter_value, loop_value, data_value, chunks_value, args_value, steps_value, n_value, _ = a
        operand_pointers = builder.bitcast(args_value, _BYTES.as_pointer())
        starts = cgutils.alloca_once(builder, _BYTES, size=count)
        offsets = cgutils.alloca_once(builder, _INTP, size=2 * count)
        dims = cgutils.alloca_once(builder, _INTP, size=5)
        chunk_length = builder.sdiv(builder.add(n_value, builder.sub(chunks_value, ir.Constant(_INTP, 1))), chunks_value)
        for k in range(count):
            at = ir.Constant(_INTP, k)
            step = builder.load(builder.gep(steps_value, [at]))
            start = builder.load(builder.gep(operand_pointers, [at]))
            builder.store(start, builder.gep(starts, [at]))
            builder.store(builder.mul(chunk_length, step), builder.gep(offsets, [at]))
            builder.store(step, builder.gep(offsets, [ir.Constant(_INTP, count + k)]))
            if k == 0:
                end = builder.add(builder.ptrtoint(start, _INTP), builder.mul(n_value, step))
        for k, value in enumerate([chunks_value, chunk_length, end, loop_value, data_value]):
            builder.store(value, builder.gep(dims, [ir.Constant(_INTP, k)]))
        function_type = ir.FunctionType(ir.VoidType(), [_BYTES] * 5 + [_INTP] * 3)
        function = builder.inttoptr(parallel_for_value, function_type.as_pointer())
        builder.call(function, [builder.inttoptr(adapter_value, _BYTES), builder.bitcast(starts, _BYTES),
                                builder.bitcast(dims, _BYTES), builder.bitcast(offsets, _BYTES),
                                ir.Constant(_BYTES, None), ir.Constant(_INTP, 4), ir.Constant(_INTP, count), chunks_value])
        return context.get_dummy_value()

    return types.none(parallel_for, adapter, loop, loop_data, chunks, args, steps, n, operands), codegen


@intrinsic
def _run_chunk(typingctx, args, dims, steps, operands):
    """One chunk, on a thread of parallel_for: the loop of dims[3] on the
    operands from args on, up to dims[1] elements or the end of the first
    operand (dims[2]), with the elements' steps (after the chunks')."""
    if not isinstance(operands, types.IntegerLiteral):
        return None
    count = operands.literal_value

    def codegen(context, builder, signature, a):
        args_value, dims_value, steps_value, _ = a
        chunk_length, end, loop_value, data_value = (builder.load(builder.gep(dims_value, [ir.Constant(_INTP, k)])) for k in (1, 2, 3, 4))
        element_steps = builder.gep(steps_value, [ir.Constant(_INTP, count)])
        start = builder.ptrtoint(builder.load(args_value), _INTP)
        left = builder.sdiv(builder.sub(end, start), builder.load(element_steps))
        length = builder.select(builder.icmp_signed("<", left, chunk_length), left, chunk_length)
        with builder.if_then(builder.icmp_signed(">", length, ir.Constant(_INTP, 0))):
            length_slot = cgutils.alloca_once_value(builder, length)
            loop = builder.inttoptr(loop_value, _RAW_LOOP.as_pointer())
            builder.call(loop, [args_value, length_slot, element_steps, builder.inttoptr(data_value, _BYTES)])
        return context.get_dummy_value()

    return types.none(args, dims, steps, operands), codegen


@intrinsic
def _partial_overlap(typingctx, args, steps, n, inputs, operands):
    """Does an output share memory with an input without being that very
    input (the same first element and step)? NumPy leaves such operands as
    they are when a sequential elementwise loop is safe on them (an output
    behind its input), which chunks on other threads, or a pass that
    reads x again after storing results, are not."""
    if not (isinstance(inputs, types.IntegerLiteral) and isinstance(operands, types.IntegerLiteral)):
        return None
    nin, count = inputs.literal_value, operands.literal_value

    def codegen(context, builder, signature, a):
        args_value, steps_value, n_value, _, _ = a
        pointers = builder.bitcast(args_value, _BYTES.as_pointer())
        spans = []
        for k in range(count):
            start = builder.ptrtoint(builder.load(builder.gep(pointers, [ir.Constant(_INTP, k)])), _INTP)
            step = builder.load(builder.gep(steps_value, [ir.Constant(_INTP, k)]))
            last = builder.add(start, builder.mul(builder.sub(n_value, ir.Constant(_INTP, 1)), step))
            low = builder.select(builder.icmp_signed("<", step, ir.Constant(_INTP, 0)), last, start)
            high = builder.add(builder.select(builder.icmp_signed("<", step, ir.Constant(_INTP, 0)), start, last),
                               ir.Constant(_INTP, 8))  # past the last element (at most 8 bytes)
            spans.append((start, step, low, high))
        result = ir.Constant(ir.IntType(1), 0)
        for j in range(nin, count):
            for k in range(nin):
                s_out, d_out, lo_out, hi_out = spans[j]
                s_in, d_in, lo_in, hi_in = spans[k]
                overlap = builder.and_(builder.icmp_signed("<", lo_out, hi_in), builder.icmp_signed("<", lo_in, hi_out))
                same = builder.and_(builder.icmp_signed("==", s_out, s_in), builder.icmp_signed("==", d_out, d_in))
                result = builder.or_(result, builder.and_(overlap, builder.not_(same)))
        return result

    return types.boolean(args, steps, n, inputs, operands), codegen


_ADAPTER_SIGNATURE = types.void(types.CPointer(types.voidptr), types.CPointer(types.intp), types.CPointer(types.intp), types.voidptr)


def _chunk_adapter_2(args, dims, steps, data):
    _run_chunk(args, dims, steps, 2)


def _chunk_adapter_3(args, dims, steps, data):
    _run_chunk(args, dims, steps, 3)


_CHUNK_ADAPTERS = {2: _chunk_adapter_2, 3: _chunk_adapter_3}

#: [threads for large arrays (the default of get_num_threads), the parallel
#: lock (1: a parallel call is running)], read and set by the compiled loops.
_SHARED = np.zeros(2, np.int64)


@functools.cache
def _parallel_for_address() -> int:
    """The address of the threading layer's parallel_for (its threads started)."""
    import llvmlite.binding

    from numba.np.ufunc import parallel

    parallel._launch_threads()
    return llvmlite.binding.address_of_symbol("numba_parallel_for")


# The chunk count (the thread count) is an argument: numba.get_num_threads()
# inside a kernel would make it uncachable.
@njit(inline="always")
def _chunk(size, chunks, c):
    step = (size + chunks - 1) // chunks
    return c * step, min(size, (c + 1) * step)


@intrinsic
def _call_ufunc_loop(typingctx, address, data, arrays, lo, hi):
    """Call the ufunc inner loop at ``address`` (with its ``data``, as NumPy
    would) on elements lo to hi of the 1-D arrays ``arrays`` (a tuple:
    inputs, outputs; any strides)."""
    if not (isinstance(address, types.Integer) and isinstance(data, types.Integer) and isinstance(arrays, types.BaseTuple)
            and all(isinstance(a, types.Array) and a.ndim == 1 for a in arrays)
            and isinstance(lo, types.Integer) and isinstance(hi, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        address_value, data_value, array_tuple, start, stop = (
            context.cast(builder, v, t, types.intp) if isinstance(t, types.Integer) else v for v, t in zip(args, signature.args)
        )
        byte_pointer = ir.IntType(8).as_pointer()
        intp = context.get_value_type(types.intp)
        operands = cgutils.alloca_once(builder, byte_pointer, size=len(arrays))
        steps = cgutils.alloca_once(builder, intp, size=len(arrays))
        dims = cgutils.alloca_once(builder, intp)
        for k, array_type in enumerate(arrays):
            array = cgutils.create_struct_proxy(array_type)(context, builder, value=builder.extract_value(array_tuple, k))
            stride = cgutils.unpack_tuple(builder, array.strides, 1)[0]
            first = builder.gep(builder.bitcast(array.data, byte_pointer), [builder.mul(start, stride)])
            builder.store(first, cgutils.gep(builder, operands, k))
            builder.store(stride, cgutils.gep(builder, steps, k))
        builder.store(builder.sub(stop, start), dims)
        loop_type = ir.FunctionType(ir.VoidType(), [byte_pointer.as_pointer(), intp.as_pointer(), intp.as_pointer(), byte_pointer])
        loop = builder.inttoptr(address_value, loop_type.as_pointer())
        builder.call(loop, [operands, dims, steps, builder.inttoptr(data_value, byte_pointer)])
        return context.get_dummy_value()

    return types.none(address, data, arrays, lo, hi), codegen


# The parallel kernels run the serial ufunc's own inner loop (its address is
# an argument, so the cached kernels never hold a stale one) on one chunk
# per thread: the sigmoid code is compiled once, in the ufunc, and a
# parallel kernel compiles in a second. Operands: inputs, then outputs,
# 1-D arrays of one size (contiguous or strided: the loop takes both).
@njit(parallel=True, **JIT_OPTIONS)
def _parallel_two_operands(chunks, loop_address, loop_data, a, b):
    for c in prange(chunks):
        lo, hi = _chunk(a.size, chunks, c)
        _call_ufunc_loop(loop_address, loop_data, (a, b), lo, hi)


@njit(parallel=True, **JIT_OPTIONS)
def _parallel_three_operands(chunks, loop_address, loop_data, a, b, c):
    for chunk in prange(chunks):
        lo, hi = _chunk(a.size, chunks, chunk)
        _call_ufunc_loop(loop_address, loop_data, (a, b, c), lo, hi)


# The same for 2-D arrays (rows of any strides): the chunks are runs of rows.
@njit(parallel=True, **JIT_OPTIONS)
def _parallel_rows_two_operands(chunks, loop_address, loop_data, a, b):
    for c in prange(chunks):
        lo, hi = _chunk(a.shape[0], chunks, c)
        for row in range(lo, hi):
            _call_ufunc_loop(loop_address, loop_data, (a[row], b[row]), 0, a.shape[1])


@njit(parallel=True, **JIT_OPTIONS)
def _parallel_rows_three_operands(chunks, loop_address, loop_data, a, b, c):
    for chunk in prange(chunks):
        lo, hi = _chunk(a.shape[0], chunks, chunk)
        for row in range(lo, hi):
            _call_ufunc_loop(loop_address, loop_data, (a[row], b[row], c[row]), 0, a.shape[1])


#: The parallel kernels for 1-D arrays, called as ``PARALLEL[name](chunks, *ufunc_loop(name, dtype), *inputs, *outputs)``.
PARALLEL = {
    "sigmoid": _parallel_two_operands,
    "sigmoid_derivative": _parallel_two_operands,
    "sigmoid_and_derivative": _parallel_three_operands,
    "sigmoid_backward": _parallel_three_operands,
}
#: The same for 2-D arrays.
PARALLEL_ROWS = {
    "sigmoid": _parallel_rows_two_operands,
    "sigmoid_derivative": _parallel_rows_two_operands,
    "sigmoid_and_derivative": _parallel_rows_three_operands,
    "sigmoid_backward": _parallel_rows_three_operands,
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
# (or errors under np.errstate). The sigmoid kernels raise none but the
# invalid flag of a compare on NaN, and the backward step multiplies user
# values (inf * 0, underflow), so every loop clears the flags at its end:
# fastsig never warns. Like NumPy, a loop first tests the four flags NumPy
# checks (invalid, divide by zero, overflow, underflow; inexact is set by
# nearly every operation and ignored) and clears them only when one is set:
# on Intel (Xeon, rocketlake to LLVM) writing MXCSR right after the vector
# code costs 130 ns, a third of a 1-element call, where reading it is free.
# On x86-64 only the SSE flags can be set (the kernels never use the x87
# unit), so the loops read and write MXCSR directly: feclearexcept also
# saves and reloads the x87 environment (30-40 ns on Zen 4).
_fetestexcept = types.ExternalFunction("fetestexcept", types.int32(types.int32))
_feclearexcept = types.ExternalFunction("feclearexcept", types.int32(types.int32))
# FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW | FE_UNDERFLOW of each platform's <fenv.h>
_FE_CHECKED = {"x86_64": 0x1D, "AMD64": 0x1D, "aarch64": 0x0F, "arm64": 0x0F}.get(platform.machine(), 0x0F)
_MXCSR_CHECKED = 0x1D  # the same four in MXCSR's low bits
_MXCSR_FLAGS = 0x3F  # all six exception flags there


@intrinsic
def _clear_sse_flags(typingctx):
    """Clear the floating-point exception flags in MXCSR (x86-64 only) when
    one that NumPy checks is set."""

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        byte_pointer = ir.IntType(8).as_pointer()
        slot = cgutils.alloca_once(builder, i32)
        address = builder.bitcast(slot, byte_pointer)
        function_type = ir.FunctionType(ir.VoidType(), [byte_pointer])
        builder.call(cgutils.get_or_insert_function(builder.module, function_type, "llvm.x86.sse.stmxcsr"), [address])
        status = builder.load(slot)
        raised = builder.icmp_unsigned("!=", builder.and_(status, ir.Constant(i32, _MXCSR_CHECKED)), ir.Constant(i32, 0))
        with builder.if_then(raised, likely=False):
            builder.store(builder.and_(status, ir.Constant(i32, ~_MXCSR_FLAGS & 0xFFFFFFFF)), slot)
            builder.call(cgutils.get_or_insert_function(builder.module, function_type, "llvm.x86.sse.ldmxcsr"), [address])
        return context.get_dummy_value()

    return types.none(), codegen


if platform.machine() in ("x86_64", "AMD64"):
    @njit(inline="always")
    def _clear_fp_flags():
        _clear_sse_flags()
else:
    @njit(inline="always")
    def _clear_fp_flags():
        if _fetestexcept(_FE_CHECKED) != 0:
            _feclearexcept(_FE_CHECKED)


# The array loops compiled as cfuncs of their own, (x, out[, out2], n) on
# contiguous memory, and the ufunc inner loops around them (templates, see
# _specialize). A ufunc loop calls its array loop through the data pointer
# NumPy passes it (each loop is registered with its array loop's address):
# contiguous operands (in place too) at once, strided ones (x[::2], a
# matrix column) in blocks of _BLOCK copied to and from the stack, so that
# they run the vector code too (the scalar functions element by element
# took 5-12 ns per element, 4-5x the NumPy baseline's time). The array
# loop is compiled once either way: a second copy of it in the ufunc loop
# took the cold first call from 5.5 to 9.9 s, and one call site for both
# cases (pointers chosen at run time) made float64 25 % slower.
def _unary_array_loop(x, out, n):
    ARRAY_LOOP(x, (out,), n)


def _fused_array_loop(x, out_s, out_ds, n):
    ARRAY_LOOP(x, (out_s, out_ds), n)


def _array_loop_signature(element_type, nout: int):
    pointer = types.CPointer(element_type)
    return types.void(*[pointer] * (1 + nout), types.intp)


@intrinsic
def _call_array_loop(typingctx, address, pointers, n):
    """Call the array loop at ``address`` (a void pointer) on the typed
    pointers ``pointers`` (x, outputs) and length n."""
    if not (isinstance(address, types.RawPointer) and isinstance(pointers, types.UniTuple)
            and isinstance(pointers.dtype, types.CPointer) and isinstance(n, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        address_value, pointer_tuple, count = args
        pointer_type = context.get_value_type(pointers.dtype)
        intp = context.get_value_type(types.intp)
        loop_type = ir.FunctionType(ir.VoidType(), [pointer_type] * len(pointers) + [intp])
        loop = builder.bitcast(address_value, loop_type.as_pointer())
        operands = [builder.extract_value(pointer_tuple, k) for k in range(len(pointers))]
        builder.call(loop, operands + [context.cast(builder, count, signature.args[2], types.intp)])
        return context.get_dummy_value()

    return types.none(address, pointers, n), codegen


def _unary_ufunc_loop(args, dims, steps, data):
    n = dims[0]
    x, out = args[0], args[1]
    sx, so = steps[0] // ITEMSIZE, steps[1] // ITEMSIZE
    if sx == 1 and so == 1 and not _partial_overlap(args, steps, n, 1, 2):
        _call_array_loop(data, (x, out), n)
    else:
        x_block, out_block = _stack_buffer_like(x), _stack_buffer_like(out)
        for lo in range(0, n, _BLOCK):
            m = min(_BLOCK, n - lo)
            for j in range(m):
                x_block[j] = x[(lo + j) * sx]
            _call_array_loop(data, (x_block, out_block), m)
            for j in range(m):
                out[(lo + j) * so] = out_block[j]
    _clear_fp_flags()


def _fused_ufunc_loop(args, dims, steps, data):
    n = dims[0]
    x, out_s, out_ds = args[0], args[S_AT], args[DS_AT]
    sx, ss, sd = steps[0] // ITEMSIZE, steps[S_AT] // ITEMSIZE, steps[DS_AT] // ITEMSIZE
    if sx == 1 and ss == 1 and sd == 1 and not _partial_overlap(args, steps, n, 1, 3):
        _call_array_loop(data, (x, out_s, out_ds), n)
    else:
        x_block, s_block, ds_block = _stack_buffer_like(x), _stack_buffer_like(out_s), _stack_buffer_like(out_ds)
        for lo in range(0, n, _BLOCK):
            m = min(_BLOCK, n - lo)
            for j in range(m):
                x_block[j] = x[(lo + j) * sx]
            _call_array_loop(data, (x_block, s_block, ds_block), m)
            for j in range(m):
                out_s[(lo + j) * ss] = s_block[j]
                out_ds[(lo + j) * sd] = ds_block[j]
    _clear_fp_flags()


def _binary_ufunc_loop(args, dims, steps, data):  # no array loop: the loop is here
    n = dims[0]
    a, b, out = args[0], args[1], args[2]
    sa, sb, so = steps[0] // ITEMSIZE, steps[1] // ITEMSIZE, steps[2] // ITEMSIZE
    if sa == 1 and sb == 1 and so == 1:
        for i in range(n):
            out[i] = SCALAR(a[i], b[i])
    else:
        for i in range(n):
            out[i * so] = SCALAR(a[i * sa], b[i * sb])
    _clear_fp_flags()


# The NumPy ufuncs that the public functions call for C-contiguous arrays
# (parallel_ufunc) have one more inner loop around the serial one above:
# from the kernel's parallel_min_size on, and when no other call holds the
# parallel lock, it runs the serial loop on pieces of the operands on all
# threads: through the threading layer's parallel_for (what Numba's prange
# lowers to, called directly), one chunk per thread, or fastsig's workers
# (see _USE_WORKERS and _workers: 1.1 µs over the ideal half at 12288
# float32 elements, against 2.4 through parallel_for). So a large call
# costs one ufunc call, not a Python decision, a lock and a Numba
# dispatch: Zen 5, 2 threads, 1e5 float32, 14.8 µs per call before
# against 12.3 (torch 12.7); the Python path alone cost 2.4 µs. Its data is a config (an int64 array: see
# _build_parallel_ufunc); the thread count and the lock live in _SHARED,
# which Python updates.
def _parallel_ufunc_loop(args, dims, steps, data):
    n = dims[0]
    shared = _config(data, _SHARED_AT)
    threads = _load_int64(shared, 0)
    if (threads > 1 and n >= _config(data, _MIN_SIZE_AT) and not _partial_overlap(args, steps, n, INPUTS, OPERANDS)
            and _try_lock(shared, 1)):
        workers = _config(data, _WORKERS_AT)  # (their state block's address, or 0)
        if workers != 0:
            generation = _workers.begin_job(workers)
            _workers.post_operands(workers, args, steps, OPERANDS)
            _workers.run_job(workers, generation, _config(data, _LOOP_AT), _config(data, _LOOP_DATA_AT), n, threads)
        else:
            _run_chunks(_config(data, _PARALLEL_FOR_AT), _config(data, _ADAPTER_AT), _config(data, _LOOP_AT),
                        _config(data, _LOOP_DATA_AT), threads, args, steps, n, OPERANDS)
        _unlock(shared, 1)
    else:
        _call_raw_loop(_config(data, _LOOP_AT), _config(data, _LOOP_DATA_AT), args, dims, steps)


class _UfuncSpec(NamedTuple):
    loop: FunctionType  # the inner-loop template
    array_loop: FunctionType | None  # the array-loop template it calls through its data, if any
    nin: int
    nout: int
    array_loops_of: str | None = None  # calls that ufunc's array loops instead (compiled once)
    s_at: int = 1  # the fused loop's operands: where σ and σ' are
    ds_at: int = 2


_UFUNC_SPECS = {
    "sigmoid": _UfuncSpec(_unary_ufunc_loop, _unary_array_loop, 1, 1),
    "sigmoid_derivative": _UfuncSpec(_unary_ufunc_loop, _unary_array_loop, 1, 1),
    "sigmoid_and_derivative": _UfuncSpec(_fused_ufunc_loop, _fused_array_loop, 1, 2),
    "sigmoid_backward": _UfuncSpec(_binary_ufunc_loop, None, 2, 1),
    # (x, ds) -> s: the fused kernel as a one-output ufunc that writes σ'
    # into its second operand, for small arrays (see _api's
    # sigmoid_and_derivative). NumPy's two-output ufuncs take its general
    # iterator, 400 ns a call against 230 for one output (np.modf too), 40 %
    # of the fused kernel's time at 1000 elements. Only for a ds that
    # NumPy passes as it is: fresh, aligned, of x's dtype, apart from x.
    "sigmoid_writing_derivative": _UfuncSpec(_fused_ufunc_loop, None, 2, 1, "sigmoid_and_derivative", 2, 1),
}
#: The ufuncs behind the public functions (the rest serve them).
PUBLIC_UFUNCS = ("sigmoid", "sigmoid_derivative", "sigmoid_and_derivative", "sigmoid_backward")


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


_UFUNC_LOOPS: dict[tuple[str, np.dtype], tuple[int, int]] = {}
_BUILT: dict[str, np.ufunc] = {}
_build_lock = threading.Lock()


def ufunc_loop(name: str, dtype: np.dtype) -> tuple[int, int]:
    """(address, data) of the serial ufunc's inner loop for ``name`` and a float dtype."""
    loop = _UFUNC_LOOPS.get((name, dtype))
    if loop is None:
        ufunc(name)
        loop = _UFUNC_LOOPS[name, dtype]
    return loop


@functools.cache
def ufunc(name: str) -> np.ufunc:
    """The serial NumPy ufunc for ``name`` (float64 and float32 loops), compiled on first use."""
    # Built once even when threads race to the first call: the parallel
    # kernels call the loops at the addresses recorded here, which must be
    # those of the ufunc everyone keeps.
    return _built_once(_BUILT, name, _build_ufunc)


def _built_once(table: dict, name: str, build) -> np.ufunc:
    """table[name], built by build(name) the first time, under the build lock."""
    with _build_lock:
        if name not in table:
            table[name] = build(name)
        return table[name]


def _build_ufunc(name: str) -> np.ufunc:
    spec = _UFUNC_SPECS[name]
    if spec.array_loops_of is not None and spec.array_loops_of not in _BUILT:  # (under the build lock)
        _BUILT[spec.array_loops_of] = _build_ufunc(spec.array_loops_of)
    compiled, addresses, data, type_lists = [], [], [], []
    for element_type, dtype in _DTYPES:
        array_loop = 0
        if spec.array_loops_of is not None:
            array_loop = _UFUNC_LOOPS[spec.array_loops_of, dtype][1]
        elif spec.array_loop is not None:
            signature = _array_loop_signature(element_type, spec.nout)
            compiled.append(_compile_loop(_specialize(spec.array_loop, name, element_type), signature))
            array_loop = compiled[-1].address
        loop = _compile_loop(_specialize(spec.loop, name, element_type), _loop_signature(element_type))
        compiled.append(loop)
        addresses.append(loop.address)
        data.append(array_loop)
        type_lists.append([dtype.num] * (spec.nin + spec.nout))
        _UFUNC_LOOPS[name, dtype] = (addresses[-1], data[-1])
    _COMPILED_LOOPS.extend(compiled)
    doc = f"fastsig's serial NumPy ufunc for {name}; see fastsig.{name}."
    return _internal.fromfunc(name, doc, addresses, type_lists, spec.nin, spec.nout, data, compiled,
                              parse_identity(None))


_DTYPES = ((types.float64, np.dtype(np.float64)), (types.float32, np.dtype(np.float32)))
#: (name, dtype, config) of every parallel ufunc loop: the configs they read.
_PARALLEL_CONFIGS: list[tuple[str, np.dtype, np.ndarray]] = []
_COMPILED_LOOPS: list[CFunc] = []  # every loop built so far (their cache_hits tell a warm start)
_PARALLEL_BUILT: dict[str, np.ufunc] = {}


@functools.cache
def _chunk_adapter(operands: int) -> int:
    """The address of the cfunc parallel_for calls on each chunk (see _run_chunks)."""
    adapter = _compile_loop(_CHUNK_ADAPTERS[operands], _ADAPTER_SIGNATURE)
    _COMPILED_LOOPS.append(adapter)
    return adapter.address


def parallel_ufunc(name: str) -> np.ufunc:
    """The ufunc for ``name`` whose inner loop runs large operands on all
    threads (see _parallel_ufunc_loop), built on first use, which also
    starts the threading layer: the public functions take it for arrays of
    _api._SMALL elements or more only, so that a process that never runs
    large arrays never starts threads (see _after_fork_in_child for a
    forked child of one that has)."""
    built = _built_once(_PARALLEL_BUILT, name, _build_parallel_ufunc)
    if _USE_WORKERS:
        _workers.ensure_workers(_default_threads - 1)
    return built


def _build_parallel_ufunc(name: str) -> np.ufunc:
    nin, nout = _UFUNC_SPECS[name].nin, _UFUNC_SPECS[name].nout
    serial = _BUILT.get(name) or _build_ufunc(name)
    _BUILT[name] = serial
    compiled, addresses, configs, type_lists = [], [], [], []
    for element_type, dtype in _DTYPES:
        loop = _compile_loop(_specialize(_parallel_ufunc_loop, name, element_type), _loop_signature(element_type))
        compiled.append(loop)
        addresses.append(loop.address)
        config = np.zeros(7, np.int64)
        config[[_LOOP_AT, _LOOP_DATA_AT, _SHARED_AT]] = [*_UFUNC_LOOPS[name, dtype], _SHARED_ADDRESS]
        if _USE_WORKERS:
            config[_WORKERS_AT] = _workers.STATE_ADDRESS
        elif _threading_layer_usable:
            config[[_ADAPTER_AT, _PARALLEL_FOR_AT]] = [_chunk_adapter(nin + nout), _parallel_for_address()]
        config[_MIN_SIZE_AT] = parallel_min_size(name, dtype)
        _PARALLEL_CONFIGS.append((name, dtype, config))
        configs.append(config)
        type_lists.append([dtype.num] * (nin + nout))
    _COMPILED_LOOPS.extend(compiled)
    doc = f"fastsig's NumPy ufunc for {name}, large arrays on all threads; see fastsig.{name}."
    return _internal.fromfunc(name, doc, addresses, type_lists, nin, nout, [c.ctypes.data for c in configs],
                              compiled, parse_identity(None))


# float16 results, rounded from float64 here rather than by NumPy's
# astype, which takes about 65 ns per subnormal float16 (see _math).
@njit(**JIT_OPTIONS)
def _float16_bits_loop(values, bits):
    for i in range(values.size):
        bits[i] = _math.float16_bits(values[i])


def to_float16(values: np.ndarray) -> np.ndarray:
    """float64 values rounded once to float16: the bits of
    ``values.astype(np.float16)``, without its slow path (C order)."""
    contiguous = np.ascontiguousarray(values, dtype=np.float64)
    bits = np.empty(contiguous.shape, np.uint16)
    _float16_bits_loop(contiguous.reshape(-1), bits.reshape(-1))
    return bits.view(np.float16)


# --------------------------------------------------------------------------
# Threads.
# --------------------------------------------------------------------------
# Only one call at a time runs in parallel: the others run serially. This
# keeps any Numba threading layer (workqueue aborts on concurrent use) safe
# and never oversubscribes the cores. The lock is _SHARED[1], taken by the
# parallel ufunc loops in compiled code and by run_kernel through these.
_SHARED_ADDRESS = _SHARED.ctypes.data
#: Do the parallel ufuncs hand their pieces to fastsig's own workers (see
#: _workers) rather than to the threading layer's parallel_for? Only with
#: FASTSIG_WORKERS=1, and in a forked child of a process that started
#: Numba's OpenMP layer (see _after_fork_in_child).
#: Numba's OpenMP layer shares one OpenMP runtime with torch, whose
#: threads spin 6.6 ms after their own work: beside them fastsig's workers
#: either spin as long and get half a core (calls right after
#: torch.sigmoid 1.5-2x slower) or sleep sooner and are woken for each
#: call that follows other work (after 0.1 ms: 1e5 float32 calls
#: alternating with np.exp, 75-80 µs against 38-41 through OpenMP). Back
#: to back, the workers take 1.3 µs less a call (see WORKERS_MIN_SIZE).
_WORKERS_SETTING = os.environ.get("FASTSIG_WORKERS")  # "1", "0" or unset (read once, as FASTSIG_NUM_THREADS)
_USE_WORKERS = _workers.supported() and _WORKERS_SETTING == "1"
#: False in a forked child of a process that started Numba's OpenMP layer:
#: GNU OpenMP would kill it (SIGTERM) at its first parallel region.
_threading_layer_usable = True


def _after_fork_in_child() -> None:
    # A forked child has none of the parent's other threads, so no call of
    # theirs can hold the lock there.
    global _threading_layer_usable
    _SHARED[1] = 0
    parallel = sys.modules.get("numba.np.ufunc.parallel")  # (imported once the layer has started)
    if parallel is not None and parallel._is_initialized and numba.threading_layer() == "omp" and not _USE_WORKERS:
        _threading_layer_usable = False
        _switch_to_workers(_workers.supported() and _WORKERS_SETTING != "0")


def _switch_to_workers(available: bool) -> None:
    """Run the parallel ufuncs' pieces on the workers from now on (or, with
    none available, every call on its own thread). The workers start at
    the next parallel_ufunc() (_api asks again after a fork), not in the
    fork handler: starting them may compile, and a compile lock held by a
    thread of the parent's would never be released here. Until then the
    calling thread takes every piece."""
    global _USE_WORKERS
    _USE_WORKERS = available
    for name, dtype, config in _PARALLEL_CONFIGS:
        config[_WORKERS_AT] = _workers.STATE_ADDRESS if available else 0
        config[_MIN_SIZE_AT] = parallel_min_size(name, dtype)


os.register_at_fork(after_in_child=_after_fork_in_child)


@njit(**JIT_OPTIONS)
def _acquire_parallel(address):
    return _try_lock(address, 1)


@njit(**JIT_OPTIONS)
def _release_parallel(address):
    _unlock(address, 1)


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
# number, not the environment. _SHARED holds it for the compiled loops.
_default_threads = _env_threads()
_SHARED[0] = _default_threads


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
    if _USE_WORKERS and _PARALLEL_BUILT:  # (no workers before a parallel ufunc needs them)
        _workers.ensure_workers(_default_threads - 1)
    _SHARED[0] = _default_threads


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
# From this many elements the parallel kernels beat one thread, through
# the threading layer (parallel_for, prange: 2.6-3.9 µs to start). The
# parallel time over the serial one on 2 cores: Zen 4, seventh session:
# float32 (16 lanes, 0.42 ns/element) 1.2 at 8192, 0.97 at 12288,
# 0.86-0.90 at 16384, 0.7 at 32768; float64 1.15 at 3072, 1.0 at 4096,
# 0.83-0.85 at 6144, 0.8 at 8192. Intel Xeon (AVX-512, eleventh session),
# σ and the fused kernel: float32 1.05-1.17 at 4096, 0.91-0.99 at 6144,
# 0.82-0.86 at 8192, 0.74-0.76 at 12288; float64 0.87-0.99 at 3072,
# 0.72-0.87 at 4096, 0.65-0.76 at 6144; sixteenth session: float32 σ 0.85
# at 12288, float64 1.13 at 4096, 0.96 at 6144. The backward step is
# memory-bound: on Zen 5 1.1-1.6 up to 16384 elements, 0.8-1.2 at 32768,
# 0.5-0.8 from 65536.
PARALLEL_MIN_SIZE = {
    "sigmoid": {"float64": 4096, "float32": 12288},
    "sigmoid_derivative": {"float64": 4096, "float32": 12288},
    "sigmoid_and_derivative": {"float64": 4096, "float32": 12288},
    "sigmoid_backward": {"float64": 65536, "float32": 65536},
}
# The same with fastsig's workers (the parallel ufuncs with _USE_WORKERS),
# which start in about 1 µs; Intel Xeon, sixteenth session: float32 σ 0.97
# at 6144, 0.87 at 8192, 0.67 at 12288; σ' 0.84 at 4096, 0.74 at 6144; σ
# and σ' 0.82 at 6144, 0.66 at 12288; float64 σ 0.93 at 2048, 0.80 at
# 3072, 0.71 at 4096; σ' 0.77 and σ and σ' 0.84 at 3072 (the public
# functions take the parallel ufunc from _api._SMALL = 4096 elements
# only); the backward step: float32 1.07 at 16384, 0.74 at 32768; float64
# 0.95 at 8192, 0.73 at 16384.
WORKERS_MIN_SIZE = {
    "sigmoid": {"float64": 4096, "float32": 8192},
    "sigmoid_derivative": {"float64": 4096, "float32": 6144},
    "sigmoid_and_derivative": {"float64": 4096, "float32": 6144},
    "sigmoid_backward": {"float64": 16384, "float32": 32768},
}
# PARALLEL_MIN_SIZE by dtype object, for parallel_threads (the hot path
# looks it up without .name).
_PARALLEL_MIN = {name: {np.dtype(k): v for k, v in sizes.items()} for name, sizes in PARALLEL_MIN_SIZE.items()}
_NEVER = 1 << 62


def parallel_min_size(name: str, dtype: np.dtype) -> int:
    """From how many elements C-contiguous arrays run in parallel, by the
    path the parallel ufuncs take now (see _USE_WORKERS)."""
    if _USE_WORKERS:
        return WORKERS_MIN_SIZE[name][dtype.name]
    return PARALLEL_MIN_SIZE[name][dtype.name] if _threading_layer_usable else _NEVER


def parallel_threads(name: str, size: int, dtype: np.dtype) -> int:
    """The threads an operation on this many elements of ``dtype`` (the
    dtype it computes in) runs on: 0 for the serial ufunc.

    The one place that chooses between the parallel kernel and the serial
    ufunc; the caller still takes the ufunc when the operands are not
    contiguous in one layout. (The thread count is read here, inline: every
    function call is 2-3 % of a parallel call's Python time.)
    """
    cap = _settings.threads
    threads = _default_threads if cap is None else cap
    return threads if threads > 1 and size >= _PARALLEL_MIN[name][dtype] and _threading_layer_usable else 0


def run_kernel(name: str, threads: int, *arrays: np.ndarray) -> None:
    """Run kernel ``name`` on ``threads`` threads on 1-D or 2-D arrays of
    one shape (inputs, then outputs; any strides), in parallel unless
    another Python thread already is: then with the serial ufunc in this
    one."""
    if _acquire_parallel(_SHARED_ADDRESS):
        try:
            # One chunk per thread: a prange over `threads` chunks uses at most
            # that many of Numba's threads, so Numba's own setting stays as is.
            loop = _UFUNC_LOOPS.get((name, arrays[-1].dtype)) or ufunc_loop(name, arrays[-1].dtype)
            (PARALLEL if arrays[0].ndim == 1 else PARALLEL_ROWS)[name](threads, *loop, *arrays)
        finally:
            _release_parallel(_SHARED_ADDRESS)
    else:
        SERIAL[name](*arrays)


def _run_serial(name: str, *arrays: np.ndarray) -> None:
    nin = _UFUNC_SPECS[name].nin
    ufunc(name)(*arrays[:nin], out=arrays[nin:])


#: The single-threaded kernels, called like PARALLEL's (inputs, then outputs):
#: the serial ufunc's loop on the same contiguous arrays.
SERIAL = {name: functools.partial(_run_serial, name) for name in PUBLIC_UFUNCS}
