"""fastsig's own worker threads, which the parallel ufuncs can hand large calls to.

Numba's threading layer starts a parallel region in 2.6-3.9 µs here (GNU
OpenMP's fork and join, whatever OMP_WAIT_POLICY or GOMP_SPINCOUNT say):
a tenth of a 1e5-element float32 call on 2 cores. These workers wait for
work spinning on one shared counter, so a call reaches them in about
0.5 µs (1.1 µs over the ideal half at 12288 float32 elements, against 2.4
through OpenMP), and a worker that the OS has descheduled, or one that is
asleep, only costs speed: the calling thread takes every piece of the
work that nobody else has taken.

They run the parallel ufuncs with ``FASTSIG_WORKERS=1``, and in a forked
child of a process that started Numba's OpenMP layer, which GNU OpenMP
would kill at its first parallel region (see _kernels._USE_WORKERS for
why they are not the default). Linux only (they sleep on a futex),
x86-64 and AArch64.

The protocol, on an int64 block (``_state``) whose hot counters sit on
cache lines of their own:

* the caller (one at a time: it holds fastsig's parallel lock) makes GEN
  odd, waits until no worker is still ACTIVE on the previous job, writes
  the job (the ufunc loop, its operands, the piece size and count, how many
  workers may help), zeroes DONE, makes GEN even again (the job's number)
  and, if a worker is SLEEPING, wakes it; then it takes pieces itself and
  finally waits until the pieces that workers took are DONE;
* a worker that sees a new even GEN counts itself ACTIVE, checks that GEN
  has not moved on meanwhile (else the job may be half rewritten: it backs
  off) and takes pieces;
* a thread takes a piece by setting its CLAIMS entry to the job's number
  (compare and swap: one thread wins). Thread t (the caller is 0) first
  takes pieces t, t + threads, ... and then any left: so each thread works
  on the same part of the operands call after call, which stays in its
  core's cache (handing out pieces first come, first served was 10-15 %
  slower at 1e5 elements), and the caller takes over the share of a worker
  that does not turn up.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import platform
import sys
import threading

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Indices of the state block. Each counter that threads write while others
# spin on it has a 64-byte line to itself; the job fields share the next.
GEN, DONE, ACTIVE, SLEEPING = 0, 8, 16, 24
LOOP, LOOP_DATA, SIZE, PIECE, PIECES, HELPERS, STOP = 32, 33, 34, 35, 36, 37, 38
BASES, STEPS = 40, 43  # the operands' first elements and byte steps (three at most)
CLAIMS = 48  # per piece: the GEN of the last job whose thread took it
#: Pieces per thread for operands far larger than the caches (see _pieces).
_MAX_PIECES_PER_THREAD = 4

_MACHINE = platform.machine().lower()
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(_MACHINE)
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129
#: Pauses a worker spins through before it sleeps: GNU OpenMP's default
#: (GOMP_SPINCOUNT), 6.6 ms here (22 ns a pause), so that calls that follow
#: other work find the workers awake, as OpenMP's would be. (Beside another
#: OpenMP runtime's threads, which spin as long, workers get half a core:
#: 2-thread calls on 1e5 float32 right after torch.sigmoid calls took
#: 1.5-2x the time; with 4096 pauses, the same as after NumPy, but 1e5
#: calls alternating with np.exp found them asleep, 75-80 µs against 38-41.)
#: A worker woken from its futex takes from 5 µs up to milliseconds to turn
#: up on this VM; the caller takes over its pieces meanwhile.
_SPINS = 300_000
#: Jobs smaller than this do not wait for workers that are asleep: they
#: are woken for the next job, and the caller does this one alone (12288
#: float32 elements 1 ms apart: 37 µs with the woken worker's help, 25
#: without; 15-19 on one thread, whose caches stay warm).
_ASLEEP_HELP_MIN = 1 << 17
#: Shares of this many elements per thread or more are split into a few
#: pieces (see _pieces), each at least this long: streaming stores (see
#: _kernels._STREAMING_MIN) need pieces that large.
_LARGE_PER_THREAD = 1 << 21
_INTP = ir.IntType(64)
_BYTES = ir.IntType(8).as_pointer()
_RAW_LOOP = ir.FunctionType(ir.VoidType(), [_BYTES.as_pointer(), _INTP.as_pointer(), _INTP.as_pointer(), _BYTES])


def supported() -> bool:
    """Can the workers run here?"""
    return sys.platform.startswith("linux") and _SYS_FUTEX is not None


# --------------------------------------------------------------------------
# Intrinsics on entry k (a literal) of the state block at an address.
# --------------------------------------------------------------------------
def _entry(builder, address, k: int):
    return builder.gep(builder.inttoptr(address, _INTP.as_pointer()), [ir.Constant(_INTP, k)])


def _literal(k) -> bool:
    return isinstance(k, types.IntegerLiteral)


@intrinsic
def _load(typingctx, address, k):
    if not _literal(k):
        return None

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_entry(builder, args[0], k.literal_value), "seq_cst", 8)

    return types.int64(address, k), codegen


def _store_intrinsic(ordering: str):
    def typer(typingctx, address, k, value):
        if not _literal(k):
            return None

        def codegen(context, builder, signature, args):
            value_64 = context.cast(builder, args[2], signature.args[2], types.int64)
            builder.store_atomic(value_64, _entry(builder, args[0], k.literal_value), ordering, 8)
            return context.get_dummy_value()

        return types.none(address, k, value), codegen

    return intrinsic(typer)


#: A job field (the GEN that publishes it orders it).
_store = _store_intrinsic("release")
#: GEN itself: ordered against the SLEEPING load that follows it.
_publish = _store_intrinsic("seq_cst")


@intrinsic
def _add(typingctx, address, k, value):
    """Add to the entry atomically; its previous value."""
    if not _literal(k):
        return None

    def codegen(context, builder, signature, args):
        value_64 = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", _entry(builder, args[0], k.literal_value), value_64, "seq_cst")

    return types.int64(address, k, value), codegen


@intrinsic
def _pause(typingctx):
    """A spin-wait hint to the core (pause, yield)."""

    def codegen(context, builder, signature, args):
        if _MACHINE in ("aarch64", "arm64"):
            builder.asm(ir.FunctionType(ir.VoidType(), []), "yield", "", [], side_effect=True)
        else:
            hint = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(hint, [])
        return context.get_dummy_value()

    return types.none(), codegen


def _futex(builder, address, operation: int, value) -> None:
    syscall = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_INTP, [_INTP], var_arg=True), "syscall")
    # The futex is GEN's low half (little-endian), compared as a u32.
    builder.call(syscall, [ir.Constant(_INTP, _SYS_FUTEX), address, ir.Constant(_INTP, operation), value,
                           ir.Constant(_INTP, 0), ir.Constant(_INTP, 0), ir.Constant(_INTP, 0)])


@intrinsic
def _sleep_while(typingctx, address, generation):
    """Sleep until GEN is woken, unless it is no longer ``generation``."""

    def codegen(context, builder, signature, args):
        _futex(builder, args[0], _FUTEX_WAIT_PRIVATE, args[1])
        return context.get_dummy_value()

    return types.none(address, generation), codegen


@intrinsic
def _wake_all(typingctx, address):
    def codegen(context, builder, signature, args):
        _futex(builder, args[0], _FUTEX_WAKE_PRIVATE, ir.Constant(_INTP, 2**31 - 1))
        return context.get_dummy_value()

    return types.none(address), codegen


@intrinsic
def _claim(typingctx, address, piece, generation):
    """Take the piece for job ``generation``: did this thread get it?"""

    def codegen(context, builder, signature, args):
        address_value, piece_value, generation_value = args
        entry = builder.gep(_entry(builder, address_value, CLAIMS), [piece_value])
        # A claim only ever moves to the current job's number: one try settles it.
        previous = builder.load_atomic(entry, "monotonic", 8)
        result = cgutils.alloca_once_value(builder, ir.Constant(ir.IntType(1), 0))
        with builder.if_then(builder.icmp_signed("!=", previous, generation_value)):
            swapped = builder.cmpxchg(entry, previous, generation_value, "acq_rel", "monotonic")
            builder.store(builder.extract_value(swapped, 1), result)
        return builder.load(result)

    return types.boolean(address, piece, generation), codegen


@intrinsic
def post_operands(typingctx, address, args, steps, operands):
    """Write NumPy's operand pointers ``args`` and byte ``steps`` (of
    ``operands`` operands, a literal) into the job."""
    if not _literal(operands):
        return None
    count = operands.literal_value

    def codegen(context, builder, signature, a):
        address_value, args_value, steps_value, _ = a
        pointers = builder.bitcast(args_value, _BYTES.as_pointer())
        for k in range(count):
            at = ir.Constant(_INTP, k)
            base = builder.ptrtoint(builder.load(builder.gep(pointers, [at])), _INTP)
            builder.store_atomic(base, _entry(builder, address_value, BASES + k), "monotonic", 8)
            step = builder.load(builder.gep(steps_value, [at]))
            builder.store_atomic(step, _entry(builder, address_value, STEPS + k), "monotonic", 8)
        return context.get_dummy_value()

    return types.none(address, args, steps, operands), codegen


@intrinsic
def _run_piece(typingctx, address, lo, length):
    """The job's loop on its elements lo to lo + length."""

    def codegen(context, builder, signature, args):
        address_value, lo_value, length_value = args
        starts = cgutils.alloca_once(builder, _BYTES, size=3)
        for k in range(3):  # unused operands' pointers are computed, never read
            base = builder.load(_entry(builder, address_value, BASES + k))
            step = builder.load(_entry(builder, address_value, STEPS + k))
            start = builder.add(base, builder.mul(lo_value, step))
            builder.store(builder.inttoptr(start, _BYTES), builder.gep(starts, [ir.Constant(_INTP, k)]))
        length_slot = cgutils.alloca_once_value(builder, length_value)
        loop = builder.inttoptr(builder.load(_entry(builder, address_value, LOOP)), _RAW_LOOP.as_pointer())
        data = builder.inttoptr(builder.load(_entry(builder, address_value, LOOP_DATA)), _BYTES)
        builder.call(loop, [starts, length_slot, _entry(builder, address_value, STEPS), data])
        return context.get_dummy_value()

    return types.none(address, lo, length), codegen


# --------------------------------------------------------------------------
# The two sides of a job.
# --------------------------------------------------------------------------
@njit(inline="always")
def begin_job(state):
    """Take the job block for a new job (between this and run_job, write
    the operands with post_operands)."""
    generation = _load(state, GEN)
    _publish(state, GEN, generation + 1)
    while _load(state, ACTIVE) != 0:
        _pause()
    return generation + 2


@njit(inline="always")
def _pieces(size, threads):
    """(piece length, piece count): one piece per thread, or a few for
    operands too large for the caches anyway, so that one who is late
    leaves part of its share to the others; multiples of 192 elements
    (whole 64-byte lines of either dtype)."""
    per_thread = size // threads
    count = threads * min(max(per_thread // _LARGE_PER_THREAD, 1), _MAX_PIECES_PER_THREAD)
    piece = ((size + count - 1) // count + 191) // 192 * 192
    return piece, (size + piece - 1) // piece


@njit(inline="always")
def _take_pieces(state, generation, thread, threads):
    """Run the pieces of the job that thread ``thread`` takes (see the
    module's docstring); how many."""
    size, piece, count = _load(state, SIZE), _load(state, PIECE), _load(state, PIECES)
    taken = 0
    p = thread
    while p < count:  # its own pieces,
        taken += _take_piece(state, generation, p, piece, size)
        p += threads
    for p in range(count):  # then any another thread has not taken
        taken += _take_piece(state, generation, p, piece, size)
    return taken


@njit(inline="always")
def _take_piece(state, generation, p, piece, size):
    if not _claim(state, p, generation):
        return 0
    lo = p * piece
    _run_piece(state, lo, min(piece, size - lo))
    return 1


@njit(inline="always")
def run_job(state, generation, loop, loop_data, size, threads):
    """Publish the job (see begin_job) of ``loop`` (a ufunc inner loop,
    with its data) on ``size`` elements over ``threads`` threads, this one
    included, take part in it and return when it is done."""
    piece, count = _pieces(size, threads)
    asleep = _load(state, SLEEPING) > 0  # (a hint for HELPERS; the wake below reads it again, after GEN)
    _store(state, HELPERS, 0 if asleep and size < _ASLEEP_HELP_MIN else threads - 1)
    _store(state, LOOP, loop)
    _store(state, LOOP_DATA, loop_data)
    _store(state, SIZE, size)
    _store(state, PIECE, piece)
    _store(state, PIECES, count)
    _store(state, DONE, 0)
    _publish(state, GEN, generation)
    if _load(state, SLEEPING) > 0:
        _wake_all(state)
    left = count - _take_pieces(state, generation, 0, threads)
    while _load(state, DONE) != left:
        _pause()


def _worker(state, index):
    """A worker's life: take part in every job it may help with (index <
    HELPERS) until STOP; spin between jobs, then sleep."""
    seen = 0
    idle = 0
    while True:
        generation = _load(state, GEN)
        if _load(state, STOP) != 0:
            return
        if generation == seen or generation & 1:
            idle += 1
            if idle < _SPINS:
                _pause()
                continue
            _add(state, SLEEPING, 1)
            if _load(state, GEN) == generation and _load(state, STOP) == 0:
                _sleep_while(state, generation)
            _add(state, SLEEPING, -1)
            idle = 0
            continue
        seen = generation
        idle = 0
        if index >= _load(state, HELPERS):
            continue
        _add(state, ACTIVE, 1)
        if _load(state, GEN) == generation:
            taken = _take_pieces(state, generation, index + 1, _load(state, HELPERS) + 1)
            if taken:
                _add(state, DONE, taken)
        _add(state, ACTIVE, -1)


def _stop(state):
    """Tell every worker to return (see _stop_workers)."""
    _store(state, STOP, 1)
    _add(state, GEN, 2)  # (changes the futex word, so no worker goes to sleep on it now)
    _wake_all(state)


# --------------------------------------------------------------------------
# The threads.
# --------------------------------------------------------------------------
def _aligned_block(length: int) -> np.ndarray:
    raw = np.zeros(length + 8, np.int64)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip:skip + length]


def _state_length() -> int:
    import numba

    return CLAIMS + _MAX_PIECES_PER_THREAD * numba.config.NUMBA_NUM_THREADS


_state = _aligned_block(_state_length())
#: The address the parallel ufuncs' loops are given (see _kernels).
STATE_ADDRESS = _state.ctypes.data
_threads: list[threading.Thread] = []
_lock = threading.Lock()
_stopped = False  # at exit: no more workers
_fork_handler_registered = False
_entry_points: dict = {}  # the worker and _stop cfuncs as ctypes functions (which hold no GIL while they run)


def _entry_point(name: str):
    if not _entry_points:
        from . import _kernels  # (which imports this module)

        for function, signature, arguments in ((_worker, types.void(types.int64, types.int64), 2),
                                               (_stop, types.void(types.int64), 1)):
            compiled = _kernels._compile_loop(function, signature)
            _kernels._COMPILED_LOOPS.append(compiled)  # (kept alive there, with every other loop)
            _entry_points[function.__name__] = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * arguments)(compiled.address)
    return _entry_points[name]


def ensure_workers(helpers: int) -> None:
    """Start workers until ``helpers`` of them run (the first time: also
    stop them at exit, and start them again in a forked child)."""
    global _fork_handler_registered
    with _lock:
        if _stopped or helpers <= len(_threads):
            return
        if not _threads:
            atexit.register(_stop_workers)
            if not _fork_handler_registered:
                os.register_at_fork(after_in_child=_restart_in_child)
                _fork_handler_registered = True
        entry_point = _entry_point("_worker")
        while len(_threads) < helpers:
            thread = threading.Thread(target=entry_point, args=(STATE_ADDRESS, len(_threads)),
                                      name=f"fastsig-worker-{len(_threads)}", daemon=True)
            thread.start()
            _threads.append(thread)


def running() -> int:
    """How many workers run."""
    return len(_threads)


def _stop_workers() -> None:
    # At exit, before the modules (and the compiled code the workers run)
    # go: stop, wake and join them. A call still running in a daemon thread
    # only loses its helpers (STOP leaves a claimed piece to finish), and
    # later calls run on their own thread.
    global _stopped
    with _lock:
        _stopped = True
        if _threads:
            _entry_point("_stop")(STATE_ADDRESS)
            for thread in _threads:
                thread.join(timeout=1.0)
            _threads.clear()


def _restart_in_child() -> None:
    # The child has the block as it was but none of the threads (nor any
    # other thread that could hold the lock).
    global _lock, _stopped
    helpers = len(_threads)
    _lock = threading.Lock()
    _state[:] = 0
    _threads.clear()
    _stopped = False
    atexit.unregister(_stop_workers)
    ensure_workers(helpers)
