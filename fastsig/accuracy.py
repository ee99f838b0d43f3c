"""Accuracy against a 200-bit reference: what ``fastsig check`` prints and the tests assert.

The reference is mpmath at 200 bits. Errors are in ulps of the exact value
in the result dtype (subnormal ulps below the normal range), and a result
is "correctly rounded" when it equals the exact value rounded to nearest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

FUNCTIONS = ("sigmoid", "sigmoid_derivative")
DTYPES = (np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16))
_PRECISION_BITS = 200


def _mp():
    import mpmath  # only the accuracy checks need it

    return mpmath


def exact(x: np.ndarray, func: str) -> list:
    """The exact σ(x) or σ'(x) (200-bit mpmath numbers) for each finite x."""
    mp = _mp()
    out = []
    with mp.workprec(_PRECISION_BITS):
        for v in np.asarray(x, dtype=np.float64).ravel().tolist():
            t = mp.exp(-abs(mp.mpf(v)))  # e^-|x|: no overflow, full relative accuracy
            if func == "sigmoid":
                out.append(1 / (1 + t) if v >= 0 else t / (1 + t))
            elif func == "sigmoid_derivative":
                out.append(t / (1 + t) ** 2)
            else:
                raise ValueError(f"unknown function {func!r}")
    return out


def _format(dtype: np.dtype) -> tuple[int, int]:
    """(precision in bits, exponent of the smallest normal) of a float dtype."""
    info = np.finfo(dtype)
    return info.nmant + 1, int(info.minexp)


def ulp_errors(
    computed: np.ndarray, x: np.ndarray, func: str, exact_values: list | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(error in ulps, correctly rounded?) of ``computed`` = func(x), element-wise.

    Only finite x are meaningful here; special values are tested exactly.
    ``exact_values`` (from :func:`exact`) saves recomputing the reference.
    """
    mp = _mp()
    computed = np.asarray(computed)
    precision, min_exp = _format(computed.dtype)
    errors = np.empty(computed.size)
    rounded_ok = np.empty(computed.size, dtype=bool)
    if exact_values is None:
        exact_values = exact(x, func)
    with mp.workprec(_PRECISION_BITS):
        for i, (c, e) in enumerate(zip(computed.astype(np.float64).ravel().tolist(), exact_values)):
            if e == 0:
                errors[i], rounded_ok[i] = (0.0, True) if c == 0 else (np.inf, False)
                continue
            _, e_exp = mp.frexp(e)
            exponent = max(int(e_exp) - 1, min_exp)
            ulp = mp.ldexp(1, exponent - precision + 1)
            errors[i] = float(abs(mp.mpf(c) - e) / ulp)
            rounded_ok[i] = mp.mpf(c) == mp.nint(e / ulp) * ulp
    return errors.reshape(computed.shape), rounded_ok.reshape(computed.shape)


# --------------------------------------------------------------------------
# sample points
# --------------------------------------------------------------------------
def tail_limit(dtype: np.dtype) -> float:
    """|x| beyond which σ(-|x|) and σ'(x) round to 0 in this dtype."""
    return math.log(2) - math.log(float(np.finfo(dtype).smallest_subnormal))


def subnormal_limit(dtype: np.dtype) -> float:
    """|x| beyond which σ(-|x|) is subnormal in this dtype."""
    return -math.log(float(np.finfo(dtype).smallest_normal))


def sample(dtype: np.dtype, n: int, seed: int = 0) -> np.ndarray:
    """About n finite points of ``dtype`` spread over its whole domain.

    float16 has only 65,536 values: all finite ones are returned.
    """
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        every = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
        return every[np.isfinite(every)]
    rng = np.random.default_rng(seed)
    limit = tail_limit(dtype) * 1.01
    tiny = float(np.finfo(dtype).smallest_subnormal)
    # Where σ is neither 0, 1 nor x-independent: the whole tail range, the
    # centre where the textbook formulas lose most, and every binade.
    uniform = np.concatenate([rng.uniform(-limit, limit, n * 2 // 10), rng.uniform(-20, 20, n * 2 // 10)])
    log_magnitude = np.exp(rng.uniform(np.log(tiny), np.log(limit), n * 4 // 10))
    log_magnitude *= rng.choice([-1.0, 1.0], log_magnitude.size)
    bits_dtype = np.uint64 if dtype.itemsize == 8 else np.uint32
    patterns = rng.integers(0, np.iinfo(bits_dtype).max, n // 5, dtype=bits_dtype, endpoint=True).view(dtype)
    edges = np.array([0.0, tiny, 1.0, 5.0, 17.0, 37.0, subnormal_limit(dtype), tail_limit(dtype), float(np.finfo(dtype).max)])
    with np.errstate(over="ignore"):
        points = np.concatenate([uniform.astype(dtype), log_magnitude.astype(dtype), patterns, edges.astype(dtype), -edges.astype(dtype)])
    return points[np.isfinite(points)]


# --------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------
@dataclass
class Row:
    dtype: str
    func: str
    x_range: str
    points: int
    max_ulp: float
    correctly_rounded: float
    baseline_max_ulp: float
    baseline_correctly_rounded: float
    #: max |fastsig - baseline| in ulps, over the points where the baseline is within 2 ulp
    agreement_ulp: float


def ranges(dtype: np.dtype) -> list[tuple[str, float, float]]:
    """The x ranges the report is split into: the far tails, then decades of |x|."""
    sub = subnormal_limit(dtype)
    return [
        (f"x < -{sub:.4g}", -np.inf, -sub),
        (f"-{sub:.4g} <= x < -5", -sub, -5.0),
        ("-5 <= x < -1", -5.0, -1.0),
        ("-1 <= x < 1", -1.0, 1.0),
        ("1 <= x < 5", 1.0, 5.0),
        (f"5 <= x < {sub:.4g}", 5.0, sub),
        (f"x >= {sub:.4g}", sub, np.inf),
    ]


def measure(
    fastsig_func: Callable, baseline_func: Callable, func: str, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Errors of fastsig and the baseline at x: (ulp, cr, baseline ulp, baseline cr, |diff| ulp)."""
    ours = fastsig_func(x)
    with np.errstate(all="ignore"):
        theirs = baseline_func(x).astype(x.dtype)
    reference = exact(x, func)
    err, ok = ulp_errors(ours, x, func, reference)
    base_err, base_ok = ulp_errors(theirs, x, func, reference)
    spacing = np.spacing(np.abs(ours)).astype(np.float64)
    spacing[spacing == 0] = float(np.finfo(x.dtype).smallest_subnormal)
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64)) / spacing
    return err, ok, base_err, base_ok, diff


def check_rows(points: int = 20_000, seed: int = 0, dtypes: Iterable = DTYPES) -> list[Row]:
    import fastsig

    rows = []
    for dtype in map(np.dtype, dtypes):
        x = sample(dtype, points, seed)
        for func in FUNCTIONS:
            err, ok, base_err, base_ok, diff = measure(getattr(fastsig, func), getattr(fastsig.baseline, func), func, x)
            for label, lo, hi in ranges(dtype):
                sel = (x >= lo) & (x < hi)
                if not sel.any():
                    continue
                trusted = sel & (base_err <= 2)
                rows.append(
                    Row(
                        dtype.name, func, label, int(sel.sum()),
                        float(err[sel].max()), float(ok[sel].mean()),
                        float(base_err[sel].max()), float(base_ok[sel].mean()),
                        float(diff[trusted].max()) if trusted.any() else float("nan"),
                    )
                )
    return rows


def _ulp(value: float) -> str:
    return "inf" if value == np.inf else ("  -" if value != value else f"{value:.3g}")


def format_rows(rows: list[Row]) -> str:
    header = (
        f"{'dtype':8} {'function':19} {'x range':22} {'points':>7} | "
        f"{'fastsig max ulp':>15} {'exact':>8} | {'baseline max ulp':>16} {'exact':>8} | {'agree':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.dtype:8} {r.func:19} {r.x_range:22} {r.points:7d} | "
            f"{_ulp(r.max_ulp):>15} {r.correctly_rounded:8.2%} | "
            f"{_ulp(r.baseline_max_ulp):>16} {r.baseline_correctly_rounded:8.2%} | {_ulp(r.agreement_ulp):>6}"
        )
    return "\n".join(lines)


def check_report(points: int = 20_000, seed: int = 0) -> str:
    """The table ``fastsig check`` prints."""
    rows = check_rows(points, seed)
    summary = []
    for dtype in DTYPES:
        for func in FUNCTIONS:
            sel = [r for r in rows if r.dtype == dtype.name and r.func == func]
            n = sum(r.points for r in sel)
            summary.append(
                f"  {dtype.name:8} {func:19} fastsig: max {_ulp(max(r.max_ulp for r in sel))} ulp, "
                f"{sum(r.correctly_rounded * r.points for r in sel) / n:.2%} exact | "
                f"baseline: max {_ulp(max(r.baseline_max_ulp for r in sel))} ulp, "
                f"{sum(r.baseline_correctly_rounded * r.points for r in sel) / n:.2%} exact"
            )
    return "\n".join(
        [
            "Accuracy against a 200-bit mpmath reference (ulps of the exact value in the result dtype).",
            "'exact': share of correctly rounded results. 'agree': max |fastsig - baseline| in ulps where",
            "the baseline (1/(1+exp(-x)), s*(1-s)) is itself within 2 ulp.",
            "",
            format_rows(rows),
            "",
            "Summary:",
            *summary,
        ]
    )


# --------------------------------------------------------------------------
# float32 over bit patterns (the exhaustive check runs all 2**32 of them)
# --------------------------------------------------------------------------
def float32_check(bits: np.ndarray) -> dict[str, tuple[float, float, int]]:
    """{func: (max ulp, share correctly rounded, points)} over float32 bit patterns.

    The reference is computed in long double (64-bit significand on x86);
    the few results that disagree with it rounded to float32 are settled
    with the 200-bit reference, so a long-double rounding tie cannot count
    against fastsig.
    """
    import fastsig

    x = np.asarray(bits, dtype=np.uint32).view(np.float32)
    x = x[np.isfinite(x)]
    if np.finfo(np.longdouble).nmant < 60:  # long double is plain double here
        raise RuntimeError("float32_check needs an 80-bit long double (x86)")
    stats = {}
    with np.errstate(all="ignore"):
        xl = x.astype(np.longdouble)
        t = np.exp(-np.abs(xl))
        inv = 1 / (1 + t)
        references = {"sigmoid": np.where(xl >= 0, inv, t * inv), "sigmoid_derivative": t * inv * inv}
        for func, ref in references.items():
            ours = getattr(fastsig, func)(x)
            mantissa, exponent = np.frexp(ref)
            ulp = np.ldexp(np.longdouble(1), np.maximum(exponent - 1, -126) - 23)
            ulp[ref == 0] = np.longdouble(2.0**-149)
            err = np.abs(ours.astype(np.longdouble) - ref) / ulp
            wrong = ours != ref.astype(np.float32)
            # Settle with mpmath the disagreements that may be the long
            # double's: those within its error (2**-63 relative, far below
            # 1e-6 ulp) of a rounding tie. The others are misrounded.
            doubtful = wrong & (np.abs(err - 0.5) < 1e-6)
            if doubtful.any():
                mp_err, mp_ok = ulp_errors(ours[doubtful], x[doubtful], func)
                err[doubtful] = mp_err
                wrong[doubtful] = ~mp_ok
            stats[func] = (float(err.max()), 1.0 - float(wrong.mean()), int(x.size))
    return stats
