"""A small pool for the memory of large results, so that a call on a large
array does not pay for fresh pages each time.

NumPy allocates an array's memory with malloc, which hands blocks of 32 MiB
and more (glibc's largest mmap threshold) straight to mmap and back to the
kernel when they are freed: the next result of that size comes in fresh
pages, which the kernel zeroes on first touch. That page-fault pass costs
about as much as fastsig's whole computation (1e7 float64, 2 threads,
Zen 4: 0.61 ns per element into a reused array, 1.12-1.3 into a fresh one).

Results of that size are therefore allocated through a NumPy memory handler
(NEP 49) whose free keeps up to :data:`SLOTS` such blocks (at most
``FASTSIG_POOL_BYTES`` bytes, 1 GiB by default; 0 turns the pool off) and
whose malloc hands one back when a result of the same size is asked for:
a loop over same-shaped batches then runs at the speed of ``out=``. The
arrays are ordinary NumPy arrays that own their memory; the handler only
decides where their memory comes from and goes. :func:`release` (public as
``fastsig.release_memory``) gives the kept blocks back.

The handler's functions are cfuncs, compiled (or loaded from the cache) on
the first large result. Everything they need (the lock, the slots, the
addresses of libc's functions) is in one block of memory that they get as
the handler's context and that is never freed, so arrays freed as the
interpreter exits still find it; no address is compiled into the code,
which is what lets the cache keep it.
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from . import _kernels

try:
    from numpy._core.multiarray import _get_madvise_hugepage
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import _get_madvise_hugepage

#: Blocks the pool keeps at most.
SLOTS = 8
#: Results of at least this many bytes come from the pool: glibc's largest
#: mmap threshold, above which every malloc is fresh pages (smaller blocks
#: malloc itself reuses).
POOL_MIN = 32 << 20
_HUGE_PAGE_MIN = 4 << 20  # NumPy's own threshold for madvise(MADV_HUGEPAGE)
_MADV_HUGEPAGE = 14

# The layout of the state block (int64 entries).
_LOCK, _CACHED, _CAP, _MALLOC, _FREE, _CALLOC, _REALLOC, _MADVISE, _HUGE_PAGES, _FIRST_SLOT = range(10)
_STATE_ENTRIES = _FIRST_SLOT + 2 * SLOTS  # then (pointer, size) per slot

_INT64P = ir.IntType(64).as_pointer()
_VOIDP = ir.IntType(8).as_pointer()
_SIZE = ir.IntType(64)


@intrinsic
def _entries(typingctx, context):
    """The state block (the handler's context pointer) as an int64 pointer."""

    def codegen(context_, builder, signature, args):
        return builder.bitcast(args[0], _INT64P)

    return types.CPointer(types.int64)(context), codegen


@intrinsic
def _pointer(typingctx, address):
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], _VOIDP)

    return types.voidptr(address), codegen


def _c_call(name: str, return_type, arity: int):
    """An intrinsic ``name(address, (a, b, ...))``: call the C function at
    address (an int64) with ``arity`` int64 arguments, returning
    ``return_type`` (int64, or none for a void function)."""
    llvm_return = ir.VoidType() if return_type is types.none else _SIZE
    function_type = ir.FunctionType(llvm_return, [_SIZE] * arity)

    def typer(typingctx, address, arguments):
        if not (isinstance(arguments, types.UniTuple) and len(arguments) == arity and arguments.dtype == types.int64):
            return None

        def codegen(context, builder, signature, values):
            function = builder.inttoptr(values[0], function_type.as_pointer())
            result = builder.call(function, [builder.extract_value(values[1], k) for k in range(arity)])
            return context.get_dummy_value() if return_type is types.none else result

        return return_type(address, arguments), codegen

    typer.__name__ = typer.__qualname__ = name
    return intrinsic(typer)


# libc's functions with every argument and result as an int64 (the x86-64
# and AArch64 calling conventions pass pointers and size_t alike).
_c_malloc = _c_call("_c_malloc", types.int64, 1)
_c_free = _c_call("_c_free", types.none, 1)
_c_calloc = _c_call("_c_calloc", types.int64, 2)
_c_realloc = _c_call("_c_realloc", types.int64, 2)
_c_madvise = _c_call("_c_madvise", types.int64, 3)


def _pool_malloc(context, size):
    n = types.int64(size)
    state = _entries(context)
    if n >= POOL_MIN and _kernels._try_lock(context, 0):  # busy: plain malloc
        for slot in range(_FIRST_SLOT, _FIRST_SLOT + 2 * SLOTS, 2):
            if state[slot + 1] == n:
                block = state[slot]
                state[slot] = 0
                state[slot + 1] = 0
                state[_CACHED] -= n
                _kernels._unlock(context, 0)
                return _pointer(block)
        _kernels._unlock(context, 0)
    block = _c_malloc(state[_MALLOC], (n,))
    if block != 0 and n >= _HUGE_PAGE_MIN and state[_HUGE_PAGES] != 0:  # as NumPy's own allocator does
        start = (block + 4095) & ~4095
        _c_madvise(state[_MADVISE], (start, (block + n - start) & ~4095, types.int64(_MADV_HUGEPAGE)))
    return _pointer(block)


def _pool_free(context, pointer, size):
    n = types.int64(size)
    block = _kernels._address(pointer)
    state = _entries(context)
    if block == 0:
        return
    if n >= POOL_MIN and _kernels._try_lock(context, 0):
        if state[_CACHED] + n <= state[_CAP]:
            for slot in range(_FIRST_SLOT, _FIRST_SLOT + 2 * SLOTS, 2):
                if state[slot + 1] == 0:
                    state[slot] = block
                    state[slot + 1] = n
                    state[_CACHED] += n
                    _kernels._unlock(context, 0)
                    return
        _kernels._unlock(context, 0)
    _c_free(state[_FREE], (block,))


def _pool_calloc(context, count, size):
    return _pointer(_c_calloc(_entries(context)[_CALLOC], (types.int64(count), types.int64(size))))


def _pool_realloc(context, pointer, size):
    return _pointer(_c_realloc(_entries(context)[_REALLOC], (_kernels._address(pointer), types.int64(size))))


def _pool_release(context):
    """Free every kept block; the bytes released, or -1 if the pool was busy."""
    state = _entries(context)
    if not _kernels._try_lock(context, 0):
        return -1
    released = state[_CACHED]
    for slot in range(_FIRST_SLOT, _FIRST_SLOT + 2 * SLOTS, 2):
        if state[slot + 1] != 0:
            _c_free(state[_FREE], (state[slot],))
            state[slot] = 0
            state[slot + 1] = 0
    state[_CACHED] = 0
    _kernels._unlock(context, 0)
    return released


_SIGNATURES = {
    _pool_malloc: types.voidptr(types.voidptr, types.uintp),
    _pool_calloc: types.voidptr(types.voidptr, types.uintp, types.uintp),
    _pool_realloc: types.voidptr(types.voidptr, types.voidptr, types.uintp),
    _pool_free: types.void(types.voidptr, types.voidptr, types.uintp),
    _pool_release: types.int64(types.voidptr),
}


class _Allocator(ctypes.Structure):  # NumPy's PyDataMemAllocator
    _fields_ = [(name, ctypes.c_void_p) for name in ("ctx", "malloc", "calloc", "realloc", "free")]


class _Handler(ctypes.Structure):  # NumPy's PyDataMem_Handler, version 1
    _fields_ = [("name", ctypes.c_char * 127), ("version", ctypes.c_uint8), ("allocator", _Allocator)]


def _pool_bytes() -> int:
    value = os.environ.get("FASTSIG_POOL_BYTES", "")
    try:
        return max(0, int(float(value))) if value else 1 << 30
    except ValueError:
        return 1 << 30


class _Pool:
    """The handler, built on first use; ``handler`` is None where it cannot be (no libc, an old NumPy)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None)
        # PyDataMem_SetHandler: entry 304 of NumPy's C API table since 1.22.
        try:
            from numpy._core import _multiarray_umath
        except ImportError:  # NumPy 1.x
            from numpy.core import _multiarray_umath
        get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
        get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        api = ctypes.cast(get_pointer(_multiarray_umath._ARRAY_API, None), ctypes.POINTER(ctypes.c_void_p))
        self.set_handler = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object)(api[304])

        malloc = libc.malloc
        malloc.restype, malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        # Never freed: arrays may still be freed into it as the interpreter exits.
        self.state = malloc(_STATE_ENTRIES * 8 + ctypes.sizeof(_Handler))
        entries = (ctypes.c_int64 * _STATE_ENTRIES).from_address(self.state)
        ctypes.memset(self.state, 0, _STATE_ENTRIES * 8)
        entries[_CAP] = _pool_bytes()
        for entry, name in ((_MALLOC, "malloc"), (_FREE, "free"), (_CALLOC, "calloc"), (_REALLOC, "realloc"), (_MADVISE, "madvise")):
            entries[entry] = ctypes.cast(getattr(libc, name), ctypes.c_void_p).value
        self.entries = entries
        compiled = {function: _kernels._compile_loop(function, signature) for function, signature in _SIGNATURES.items()}
        self.compiled = compiled  # keeps the code alive
        self.release = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)(compiled[_pool_release].address)

        handler = _Handler.from_address(self.state + _STATE_ENTRIES * 8)
        handler.name = b"fastsig_pool"
        handler.version = 1
        handler.allocator = _Allocator(self.state, *(compiled[f].address for f in (_pool_malloc, _pool_calloc, _pool_realloc, _pool_free)))
        new_capsule = ctypes.pythonapi.PyCapsule_New
        new_capsule.restype, new_capsule.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        self.handler = new_capsule(ctypes.addressof(handler), b"mem_handler", None)


_pool: _Pool | None = None
_pool_lock = threading.Lock()


_pool_failed = False


def _get_pool() -> _Pool | None:
    """The pool, built on first use; None when it is off (FASTSIG_POOL_BYTES=0)
    or cannot be built here."""
    global _pool, _pool_failed
    if _pool is None and not _pool_failed:
        with _pool_lock:
            if _pool is None and not _pool_failed:
                try:
                    if _pool_bytes() == 0:
                        raise RuntimeError("off")
                    _pool = _Pool()
                except Exception:
                    _pool_failed = True
    return _pool


def empty(shape, dtype: np.dtype) -> np.ndarray:
    """np.empty(shape, dtype) in C order, its memory from the pool (call it
    for results of POOL_MIN bytes or more)."""
    pool = _get_pool()
    if pool is None:
        return np.empty(shape, dtype)
    pool.entries[_HUGE_PAGES] = _get_madvise_hugepage()  # NumPy's setting, which can change
    previous = pool.set_handler(pool.handler)
    try:
        return np.empty(shape, dtype)
    finally:
        pool.set_handler(previous)


def release() -> int:
    """Free the blocks fastsig keeps for the next large results (see
    :mod:`fastsig._memory`), as ``torch.cuda.empty_cache`` does for PyTorch's.

    Returns
    -------
    int
        The bytes given back.

    Examples
    --------
    >>> import fastsig
    >>> fastsig.release_memory() >= 0
    True
    """
    if _pool is None:
        return 0
    for _ in range(1000):
        released = _pool.release(_pool.state)
        if released >= 0:
            return int(released)
    return 0


def kept() -> int:
    """The bytes the pool keeps now."""
    return 0 if _pool is None else int(_pool.entries[_CACHED])
