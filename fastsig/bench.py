"""``fastsig bench``: fastsig against the NumPy baseline and its peers, side by side.

Every implementation comes from the table in :mod:`fastsig.comparisons`
(the one ``benchmarks/`` and the tests use). For each operation, dtype and
size, all implementations are timed in this one process, round-robin, so a
noisy machine slows them alike:

* warm-up first (it compiles fastsig's kernels and loads the peers),
* enough calls in a timed loop to last ``min_time`` (one call for large arrays),
  after one untimed call (another library's threads may still be spinning),
* the best of ``repeats`` such loops, timed with :func:`time.perf_counter_ns`,
  garbage collection off.

The in-place operations get their input re-filled from a saved copy before
each timed loop, outside the timed region; within a loop, the second and
later calls overwrite values already in range (σ applied again stays in
(0, 1), σ' in (0, 0.25]). fastsig's kernels and the NumPy ufuncs take the
same time for any finite value, so this times the same work; above the
sizes where ``number`` is 1, every call sees the original data.

The memory-copy reference (``np.copyto`` of the same array) is timed with
each case: no element-wise operation that reads one array and writes one
can beat it.

"max ulp" is measured once per operation and dtype, on
:data:`ACCURACY_POINTS` inputs drawn as the timed ones are, against a
cheap reference: the stable formulas evaluated in float64 for float16 and
float32 results, in ``np.longdouble`` (80-bit on x86) for float64 ones.
``fastsig check`` has the exact, mpmath-based, figures.
"""

from __future__ import annotations

import gc
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from .comparisons import ALL_DTYPES, COMPARISONS, DTYPES, OPERATIONS, PEERS, X_RANGE, Comparison, memory_copy

#: Sizes of a full run: 1e1 ... 1e7 (1e8 on request: it takes minutes and GBs).
SIZES = tuple(10**k for k in range(1, 8))
ALL_SIZES = tuple(10**k for k in range(1, 9))
#: ``--quick``: one operation, the two main dtypes, three regimes (cache,
#: parallel in cache, main memory): seconds of timing after compilation.
QUICK = dict(ops=("sigmoid",), dtypes=DTYPES, sizes=(10**3, 10**5, 10**7), min_time=2e-3, repeats=3)
#: Points the max-ulp column is measured on, per operation and dtype.
ACCURACY_POINTS = 1 << 16
#: Seconds of timed rounds per case beyond which fewer repeats are run.
ROUND_BUDGET_S = 4.0
#: The name of the memory-copy reference in rows.
COPY = "copy"


def size_label(size: int) -> str:
    """1000 -> "1e3"; other sizes as plain integers."""
    k = round(math.log10(size)) if size > 0 else 0
    return f"1e{k}" if 10**k == size else str(size)


def parse_size(text: str) -> int:
    """ "1e5", "100000", "100_000" -> 100000."""
    value = float(text.replace("_", ""))
    if not value.is_integer() or value < 1:
        raise ValueError(f"a size is a positive whole number of elements, got {text!r}")
    return int(value)


# --------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------
@dataclass
class Row:
    """One operation, dtype and size: the time of every implementation."""

    op: str
    dtype: str
    size: int
    #: implementation ("fastsig", "baseline", a peer, "copy") -> best ns per call;
    #: an implementation that is not installed or rejects this dtype is absent.
    ns: dict[str, float] = field(default_factory=dict)
    #: implementation -> max ulp error over the accuracy sample (per op and dtype).
    ulp: dict[str, float] = field(default_factory=dict)

    def ns_per_element(self, impl: str = "fastsig") -> float | None:
        t = self.ns.get(impl)
        return None if t is None else t / self.size

    def speedup(self, impl: str) -> float | None:
        """How many times faster fastsig is than ``impl`` (>1: fastsig is faster)."""
        t, ours = self.ns.get(impl), self.ns.get("fastsig")
        return None if t is None or not ours else t / ours

    def throughput(self, impl: str = "fastsig") -> float | None:
        """Elements per second."""
        t = self.ns.get(impl)
        return None if not t else self.size / t * 1e9


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------
class _Case:
    """One implementation on its own inputs, ready to be timed."""

    def __init__(self, func: Callable, args: tuple, refill: Callable[[], None] | None):
        self.func, self.args, self.refill = func, args, refill
        self.number = 1
        self.best = math.inf
        self.loop_ns = 0.0  # the expected length of one timed loop

    def loop(self) -> int:
        """Run ``number`` calls; the elapsed ns."""
        func, args = self.func, self.args
        # One untimed call first: the previous implementation's thread pool
        # (torch's, numexpr's or fastsig's own OpenMP threads) spins on the
        # cores for a while after its call and would slow this one down.
        func(*args)
        if self.refill is not None:
            self.refill()
        start = time.perf_counter_ns()
        for _ in range(self.number):
            func(*args)
        return time.perf_counter_ns() - start

    def calibrate(self, min_time_ns: float) -> None:
        """Warm up, then choose ``number`` so that a loop lasts about min_time."""
        self.loop()  # compiles, imports, faults the pages in
        # The best of three single calls: the first ones after compiling (or
        # after a thread pool went to sleep) can be many times slower.
        one = max(min(self.loop() for _ in range(3)), 1)
        self.number = max(1, math.ceil(min_time_ns / one))
        self.loop_ns = one
        if self.number > 1:  # refine on a loop of the estimated length
            elapsed = max(self.loop(), 1)
            per_call = elapsed / self.number
            self.number = max(1, math.ceil(min_time_ns / per_call))
            self.loop_ns = per_call * self.number

    def measure(self) -> None:
        self.best = min(self.best, self.loop() / self.number)


def _case(c: Comparison, func: Callable, inputs: tuple[np.ndarray, ...]) -> _Case:
    if not c.in_place:
        return _Case(func, inputs, None)
    saved = inputs[0]
    work = saved.copy()
    return _Case(func, (work, *inputs[1:]), lambda: np.copyto(work, saved))


def time_case(
    c: Comparison,
    dtype: str,
    size: int,
    impls: Sequence[str],
    *,
    min_time: float = 0.01,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Best ns per call of each implementation (and of the memory copy), measured
    side by side: every repeat runs one loop of each, in turn.

    An implementation that raises on this dtype (a peer without float16) is
    left out of the result.
    """
    inputs = c.inputs(size, dtype, seed)
    copy_out = np.empty_like(inputs[0])
    cases: dict[str, _Case] = {}
    for impl in impls:
        func = c.implementation(impl)
        if func is None:
            continue
        cases[impl] = _case(c, func, inputs)
    cases[COPY] = _Case(memory_copy, (inputs[0], copy_out), None)
    min_time_ns = min_time * 1e9
    with np.errstate(all="ignore"):
        for impl, case in list(cases.items()):
            try:
                case.calibrate(min_time_ns)
            except Exception:  # noqa: BLE001 - a peer that does not take this dtype
                del cases[impl]
        # One round at 1e8 lasts seconds: fewer rounds there (at least two).
        round_ns = sum(case.loop_ns for case in cases.values())
        rounds = max(min(repeats, 2), min(repeats, int(ROUND_BUDGET_S * 1e9 // max(round_ns, 1))))
        enabled = gc.isenabled()
        gc.disable()
        try:
            for _ in range(rounds):
                for case in cases.values():
                    case.measure()
        finally:
            if enabled:
                gc.enable()
    return {impl: case.best for impl, case in cases.items()}


# --------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------
def _wide(dtype: np.dtype) -> type:
    return np.longdouble if dtype == np.float64 else np.float64


def reference(kind: str, inputs: tuple[np.ndarray, ...], dtype: np.dtype) -> np.ndarray:
    """σ, σ' or the backward step of ``inputs``, in a wider float type (see the module doc)."""
    wide = _wide(np.dtype(dtype))
    if kind == "sigmoid_backward":
        g, y = (a.astype(wide) for a in inputs)
        return g * y * (1 - y)
    x = inputs[0].astype(wide)
    t = np.exp(-np.abs(x))  # e^-|x| never overflows
    if kind == "sigmoid":
        return np.where(x >= 0, 1 / (1 + t), t / (1 + t))
    if kind == "sigmoid_derivative":
        return t / ((1 + t) * (1 + t))
    raise ValueError(f"unknown reference {kind!r}")


def ulp_errors(values: np.ndarray, exact: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """|values - exact| in units in the last place of ``exact`` in ``dtype``
    (subnormal ulps below the normal range)."""
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    wide = exact.dtype.type
    _, exponent = np.frexp(exact)
    exponent = np.maximum(exponent.astype(np.int64) - 1, info.minexp) - info.nmant
    ulp = np.ldexp(wide(1), exponent.astype(np.int32))
    values = np.asarray(values).astype(dtype).astype(wide)
    return (np.abs(values - exact) / ulp).astype(np.float64)


def max_ulp(c: Comparison, dtype: str, impls: Sequence[str], points: int = ACCURACY_POINTS, seed: int = 1) -> dict[str, float]:
    """Max ulp error of each implementation over ``points`` inputs drawn as the timed ones."""
    dtype = np.dtype(dtype)
    inputs = c.inputs(points, dtype, seed)
    exacts = [reference(kind, inputs, dtype) for kind in c.outputs]
    result = {}
    with np.errstate(all="ignore"):
        for impl in impls:
            func = c.implementation(impl)
            if func is None:
                continue
            try:
                values = c.call(impl, inputs)
            except Exception:  # noqa: BLE001 - as in time_case
                continue
            values = values if isinstance(values, tuple) else (values,)
            result[impl] = max(float(ulp_errors(v, e, dtype).max()) for v, e in zip(values, exacts))
    return result


# --------------------------------------------------------------------------
# Progress: tqdm if installed, else a line on stderr.
# --------------------------------------------------------------------------
class _Progress:
    """A minimal stand-in for tqdm: 'fastsig bench  12/42  sigmoid float32 1e5' on stderr."""

    def __init__(self, total: int, desc: str, file=None):
        self.total, self.n, self.desc, self.file = total, 0, desc, file or sys.stderr
        self.postfix = ""
        self.start = time.monotonic()
        self._width = 0
        self._draw()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self.start
        line = f"{self.desc}  {self.n}/{self.total}  {elapsed:4.0f} s  {self.postfix}"
        self.file.write("\r" + line.ljust(self._width))
        self.file.flush()
        self._width = len(line)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        self._draw()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._draw()

    def close(self) -> None:
        self.file.write("\r" + " " * self._width + "\r")
        self.file.flush()


class _NoProgress:
    def set_postfix_str(self, text: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str = "fastsig bench", enabled: bool = True):
    """tqdm's bar when tqdm is installed, else a plain stderr line; nothing if not enabled."""
    if not enabled:
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return _Progress(total, desc)
    return tqdm(total=total, desc=desc, unit="case", leave=False, file=sys.stderr, dynamic_ncols=True)


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------
def _check(values: Iterable, allowed: Sequence, what: str) -> tuple:
    values = tuple(values)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}; choose from {', '.join(allowed)}")
    return values


def run(
    ops: Iterable[str] = OPERATIONS,
    dtypes: Iterable[str] = DTYPES,
    sizes: Iterable[int] = SIZES,
    peers: Iterable[str] | None = None,
    *,
    min_time: float = 0.01,
    repeats: int = 5,
    accuracy: bool = True,
    progress: bool = True,
) -> list[Row]:
    """Time every operation × dtype × size; one :class:`Row` each, in that order.

    ``peers``: the peers to include (None: every installed one; a peer that
    is not installed is skipped). ``accuracy``: also measure max ulp.
    """
    ops = _check(ops, OPERATIONS, "operation")
    dtypes = tuple(np.dtype(d).name for d in dtypes)
    _check(dtypes, ALL_DTYPES, "dtype")
    sizes = tuple(int(s) for s in sizes)
    peers = PEERS if peers is None else _check(peers, PEERS, "peer")
    if not (ops and dtypes and sizes):
        return []
    if repeats < 1:
        raise ValueError("repeats must be at least 1")

    rows = []
    bar = progress_bar(len(ops) * len(dtypes) * len(sizes), enabled=progress)
    try:
        for op in ops:
            c = COMPARISONS[op]
            impls = [impl for impl in c.implementations() if impl in ("fastsig", "baseline") or impl in peers]
            for dtype in dtypes:
                ulp = {}
                for size in sizes:
                    bar.set_postfix_str(f"{op} {dtype} {size_label(size)}")
                    ns = time_case(c, dtype, size, impls, min_time=min_time, repeats=repeats)
                    if accuracy and not ulp:
                        ulp = max_ulp(c, dtype, [i for i in impls if i in ns])
                    rows.append(Row(op, dtype, size, ns, ulp))
                    bar.update(1)
    finally:
        bar.close()
    return rows


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------
def _num(value: float | None, width: int) -> str:
    if value is None:
        return "-".rjust(width)
    if value == math.inf:
        return "inf".rjust(width)
    if value >= 100:
        text = f"{value:.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text.rjust(width)


def _times(value: float | None, width: int) -> str:
    if value is None:
        return "-".rjust(width)
    return (f"{value:.1f}×" if value < 100 else f"{value:.0f}×").rjust(width)


def _ulp(value: float | None, width: int) -> str:
    if value is None:
        return "-".rjust(width)
    if value == math.inf or value != value:
        return str(value).rjust(width)
    return (f"{value:.2f}" if value < 10 else f"{value:.3g}" if value < 1e4 else f"{value:.1e}").rjust(width)


def _impls(rows: Sequence[Row]) -> list[str]:
    present = {impl for r in rows for impl in r.ns}
    return [impl for impl in ("baseline", *PEERS) if impl in present]


def format_table(rows: Sequence[Row]) -> str:
    """The speed table, then the accuracy table, then how to read them."""
    if not rows:
        return "(nothing measured)"
    others = _impls(rows)
    op_w = max(len("operation"), *(len(r.op) for r in rows))
    header = (
        f"{'operation':<{op_w}}  {'dtype':<7}  {'size':>5}  {'ns/elem':>8}"
        + "".join(f"  {'vs ' + impl:>12}" for impl in others)
        + f"  {'copy ns/el':>10}  {'max ulp':>8}"
    )
    lines = [header, "-" * len(header)]
    previous = None
    for r in rows:
        if previous is not None and (r.op, r.dtype) != previous:
            lines.append("")
        previous = (r.op, r.dtype)
        lines.append(
            f"{r.op:<{op_w}}  {r.dtype:<7}  {size_label(r.size):>5}  {_num(r.ns_per_element(), 8)}"
            + "".join(f"  {_times(r.speedup(impl), 12)}" for impl in others)
            + f"  {_num(r.ns_per_element(COPY), 10)}  {_ulp(r.ulp.get('fastsig'), 8)}"
        )

    accuracy = {(r.op, r.dtype): r.ulp for r in rows if r.ulp}
    if accuracy:
        impls = ["fastsig", *others]
        head = f"{'max ulp':<{op_w}}  {'dtype':<7}" + "".join(f"  {impl:>9}" for impl in impls)
        lines += ["", head, "-" * len(head)]
        for (op, dtype), ulp in accuracy.items():
            lines.append(f"{op:<{op_w}}  {dtype:<7}" + "".join(f"  {_ulp(ulp.get(i), 9)}" for i in impls))

    lo, hi = X_RANGE
    lines += [
        "",
        "ns/elem: fastsig's best time per call / size. vs X: X's time / fastsig's (>1×: fastsig is faster).",
        f"copy: np.copyto of the same array, the memory-bandwidth limit. x uniform in [{lo:g}, {hi:g}].",
        f"max ulp: over {ACCURACY_POINTS} such points (the worse of two results for sigmoid_and_derivative),",
        "against the stable formulas in float64 (float16/32 results) or long double (float64 results);",
        "`fastsig check` has exact figures. In-place ops: input re-filled before each timed loop (later",
        "calls in a loop see values in (0, 1)). '-': not installed, no such op, or rejects the dtype.",
    ]
    return "\n".join(lines)


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return None


def environment(rows: Sequence[Row], load: float | None = None) -> str:
    """Two lines: versions and cores; the threads each implementation ran on
    and the load average before the run (busy cores make parallel timings noisy)."""
    import platform

    import numba

    from . import __version__, get_num_threads
    from .comparisons import _MODULES, all_cores

    used = {impl for r in rows for impl in r.ns}
    threads = [f"fastsig {get_num_threads()}", "NumPy 1"]
    versions = [f"fastsig {__version__}", f"numba {numba.__version__}", f"numpy {np.__version__}"]
    for name in PEERS:
        module = _MODULES[name]() if name in used else None
        if module is None:
            continue
        if name == "scipy":
            import scipy

            versions.append(f"scipy {scipy.__version__}")
            threads.append("scipy 1")
        elif name == "numexpr":
            versions.append(f"numexpr {module.__version__}")
            threads.append(f"numexpr {module.get_num_threads()}")
        else:
            versions.append(f"torch {module.__version__}")
            threads.append(f"torch {module.get_num_threads()}")
    busy = ""
    if load is not None:
        busy = f"; load average {load:.1f} before the run"
        if load > 0.5 * all_cores():
            busy += " (a busy machine: parallel timings are noisy)"
    return (
        f"{', '.join(versions)}; {platform.machine()}, {all_cores()} cores\n"
        f"threads: {', '.join(threads)}{busy}"
    )


def plot(rows: Sequence[Row], path: str) -> None:
    """Throughput against size, per operation and dtype, with the memory-copy limit (see :mod:`fastsig.plot`)."""
    from .plot import plot_throughput

    plot_throughput(rows, path)


def bench_report(
    ops: Iterable[str] = OPERATIONS,
    dtypes: Iterable[str] = DTYPES,
    sizes: Iterable[int] = SIZES,
    peers: Iterable[str] | None = None,
    *,
    min_time: float = 0.01,
    repeats: int = 5,
    progress: bool = True,
    plot_path: str | None = None,
) -> str:
    """Run the comparison, plot it if asked, and return the table (what ``fastsig bench`` prints)."""
    if plot_path is not None:
        from .plot import require_matplotlib

        require_matplotlib()  # fail before minutes of timing, not after
    load = _load()
    rows = run(ops, dtypes, sizes, peers, min_time=min_time, repeats=repeats, progress=progress)
    if plot_path is not None:
        plot(rows, plot_path)
    return environment(rows, load) + "\n\n" + format_table(rows) if rows else format_table(rows)
