"""The scalar math of fastsig, written once and compiled for every target.

Every function here takes and returns scalars (or small tuples of them) and
is ``@njit(inline='always')`` so that the kernels (CUDA, the CPU's fix-ups
and the tests' reference) inline it into their loop bodies. The CPU array
loops run the same functions once more on vectors of 16 lanes
(:mod:`fastsig._lanes`), with the same bits. Each kernel is two stages,
terms and result (see below), which the scalar functions compose.

Why it is built this way:

* ``math.exp`` compiles to one scalar libm call per element (no SVML in the
  llvmlite wheels), so e^-|x| is computed here from a range reduction and a
  polynomial, with the power of two assembled from integer bits. Nothing in
  the hot path branches: conditions become selects, as vector code needs.
* Fused multiply-adds are written explicitly with :func:`fma` instead of
  relying on ``fastmath={'contract'}``: contraction is a permission, not a
  promise, and a fused kernel (sigmoid and derivative together) could then
  round differently from the separate ones. Explicit FMAs make every target
  produce the same bits (one exception, float32 on CPUs with AVX-512 against
  CUDA and other CPUs, in about 1 of 2**24 inputs: see :func:`reciprocal`).
* The quotients are computed with a correction step (the residual of the
  division, exact thanks to the FMA), so σ is correctly rounded in almost
  every case and never worse than 1 ulp, and σ' = σ(x)·σ(-x) keeps its full
  relative accuracy down to the subnormal range, where s·(1-s) returns 0.
  The correction squares the reciprocal's error, so the reciprocal need not
  be exact: on AVX-512 it is no division at all (see :func:`reciprocal`).
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "fma",
    "mul",
    "select",
    "sigmoid_f64",
    "sigmoid_derivative_f64",
    "sigmoid_and_derivative_f64",
    "sigmoid_f32",
    "sigmoid_derivative_f32",
    "sigmoid_and_derivative_f32",
    "sigmoid_backward_f64",
    "sigmoid_backward_f32",
    # the stages of the kernels above, for the CPU array loops
    "NORMAL_RANGE_F64",
    "exp_f64",
    "sigmoid_f64_result",
    "sigmoid_derivative_f64_result",
    "sigmoid_and_derivative_f64_result",
    "FAST_RANGE_F32",
    "exp_pair_f32",
    "sigmoid_f32_from_pair",
    "sigmoid_derivative_f32_from_pair",
]


# --------------------------------------------------------------------------
# LLVM intrinsics that Numba does not expose as Python functions.
# --------------------------------------------------------------------------
@intrinsic
def fma(typingctx, a, b, c):
    """a*b + c with a single rounding (llvm.fma; exact on every target)."""
    if not (a == b == c and isinstance(a, types.Float)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


# The CUDA compiler (NVVM, and ptxas after it) contracts a product followed
# by a sum into one FMA unless told otherwise, and numba-cuda has no switch
# for that. A contraction skips the product's rounding, so the GPU would no
# longer give the CPU's bits. Every product whose rounding matters and that
# feeds a sum is therefore written mul(a, b): the same plain fmul on the CPU,
# and llvm.nvvm.mul.rn.*, which is never contracted, on CUDA. (Products by a
# power of two are exact, so contracting them changes nothing.)
_NVVM_MUL_RN = {types.float64: "llvm.nvvm.mul.rn.d", types.float32: "llvm.nvvm.mul.rn.f"}


@intrinsic
def mul(typingctx, a, b):
    """a*b rounded on its own: never fused with a following add, on any target."""
    a, b = types.unliteral(a), types.unliteral(b)
    if not (a == b and a in _NVVM_MUL_RN):
        return None

    def codegen(context, builder, signature, args):
        if str(builder.module.triple).startswith("nvptx"):
            ty = context.get_value_type(signature.return_type)
            fnty = ir.FunctionType(ty, [ty, ty])
            fn = cgutils.get_or_insert_function(builder.module, fnty, _NVVM_MUL_RN[signature.return_type])
            return builder.call(fn, args)
        return builder.fmul(*args)

    return a(a, b), codegen


@intrinsic
def select(typingctx, condition, if_true, if_false):
    """``if_true if condition else if_false`` as one LLVM select.

    Numba's own conditional expression becomes a branch plus phi nodes in
    its IR; written in functions inlined into loops it also trips Numba's
    SSA checks. A select is branch-free, so the loops stay vectorizable.
    """
    if_true, if_false = types.unliteral(if_true), types.unliteral(if_false)
    if not isinstance(condition, types.Boolean) or if_true != if_false:
        return None

    def codegen(context, builder, signature, args):
        return builder.select(*args)

    return if_true(types.boolean, if_true, if_false), codegen


@functools.cache
def cpu_features() -> frozenset[str]:
    """The features Numba compiles CPU code for ("avx2", "avx512f", ...):
    those its JIT gives LLVM (NUMBA_CPU_FEATURES, else the host's, as
    Numba's CPU codegen reads them)."""
    from numba.core import codegen, config

    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    return frozenset(f[1:] for f in features.split(",") if f.startswith("+"))


def cpu_has_avx512() -> bool:
    """Whether Numba compiles CPU code for a target with AVX-512F."""
    return "avx512f" in cpu_features()


def cpu_has_avx2() -> bool:
    """Whether Numba compiles CPU code for a target with AVX2."""
    return "avx2" in cpu_features()


def newton_reciprocal(builder: ir.IRBuilder, d: ir.Value, estimate: ir.Value) -> ir.Value:
    """The reciprocal estimate of d refined by one Newton step, q + q (1 - q d),
    with two FMAs: from 2**-14 to within 2**-28 (float32: within 1 ulp; IR
    for scalars or vectors of either)."""
    vector = isinstance(d.type, ir.VectorType)
    element = d.type.element if vector else d.type
    one = ir.Constant(d.type, [1.0] * d.type.count if vector else 1.0)
    suffix = "f64" if isinstance(element, ir.DoubleType) else "f32"
    name = f"llvm.fma.v{d.type.count}{suffix}" if vector else f"llvm.fma.{suffix}"
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(d.type, [d.type] * 3), name)
    residual = builder.call(fma, [builder.fneg(estimate), d, one])
    return builder.call(fma, [estimate, residual, estimate])


# vrcp14ss / vrcp14sd (a, b, passthrough, mask) estimate 1/b[0] into lane 0.
_RCP14_SCALAR = {types.float32: ("llvm.x86.avx512.rcp14.ss", 4), types.float64: ("llvm.x86.avx512.rcp14.sd", 2)}


@intrinsic
def reciprocal(typingctx, d):
    """1/d for a float32 or float64 d, close enough for the quotients built
    on it: the division where that is cheap.

    A 512-bit division holds the divider for 10 cycles (float32, vdivps)
    or 16 (float64, vdivpd: measured on the Intel Xeon here, 8 lanes every
    16 cycles, where all the other operations of float64 σ take about 20)
    and the FMA ports for 3-4 more. On a CPU with AVX-512 this is therefore vrcp14 (the
    estimate within 2**-14) refined by one Newton step, within 2**-28: what
    the vector code does with vrcp14ps/vrcp14pd (the same estimate per
    lane), so the scalar code keeps the vector code's bits. Elsewhere (CUDA,
    other CPUs) it is the division.

    Every quotient built on it corrects q = n q0 by the residual n - q d
    (exact by the FMA), which squares q0's relative error: float32 within 1
    ulp changes a result in about 1 of 2**24 inputs, by 1 ulp, and neither
    is more than 0.501 ulp off. float64 within 2**-28 leaves at most 2**-56
    (1/8 ulp) before the final rounding, and in fact far less: a result
    differs from the division's by 1 ulp in 0.15-1.2 % of inputs (the
    maximum errors stay 0.687 ulp for σ and 0.733 for σ'; 0.06-0.13 % fewer
    results correctly rounded), for 13-22 % less time per element (σ; σ' 11-16 %, the fused
    kernel 6-12 %: Intel Xeon, one core). A second Newton step gave the
    division's bits on 10**5 inputs, and saved only 3-10 %.
    """
    if d not in _RCP14_SCALAR:
        return None

    def codegen(context, builder, signature, args):
        (value,) = args
        if str(builder.module.triple).startswith("nvptx") or not cpu_has_avx512():
            return builder.fdiv(ir.Constant(value.type, 1.0), value)
        name, count = _RCP14_SCALAR[signature.return_type]
        vector = ir.VectorType(value.type, count)
        rcp14 = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector, vector, vector, ir.IntType(8)]), name)
        lane0 = ir.Constant(ir.IntType(32), 0)
        lanes = builder.insert_element(ir.Constant(vector, [0.0] * count), value, lane0)
        all_lanes = ir.Constant(ir.IntType(8), -1)
        estimate = builder.extract_element(builder.call(rcp14, [lanes, lanes, lanes, all_lanes]), lane0)
        return newton_reciprocal(builder, value, estimate)

    return d(d), codegen


@intrinsic
def _float64_to_int64_bits(typingctx, value):
    """Reinterpret the bits of a float64 as an int64 (no conversion)."""
    if value != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


@intrinsic
def _int64_bits_to_float64(typingctx, bits):
    """Reinterpret the bits of an int64 as a float64 (no conversion)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        (value,) = args
        return builder.bitcast(value, context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


# --------------------------------------------------------------------------
# e^-a for a >= 0, as an unevaluated pair times a power of two.
# --------------------------------------------------------------------------
_INV_LN2 = 1.4426950408889634
_LN2 = 0.6931471805599453
# ln 2 split so that k * _LN2_HI is exact for |k| < 2**21 (fdlibm's split).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# Adding 1.5 * 2**52 rounds a double of magnitude < 2**51 to an integer.
_ROUND_MAGIC = 6755399441055744.0
_MAGIC_BITS = 0x4338000000000000  # the bits of _ROUND_MAGIC


@njit(inline="always")
def lookup(table, j):
    """table[j mod len(table)] for a tuple of 8 float64 or 16 float32: the
    low bits of j pick the entry, as the permute of _lanes does by itself."""
    return table[j & (len(table) - 1)]


def _exp2_pairs(entries: int) -> tuple[tuple, tuple]:
    """2**(j/entries) = hi + lo, j = 0..entries-1: hi rounded to float64 and
    lo the rest, rounded (together within 2**-106 of the power)."""
    import mpmath

    with mpmath.workprec(200):
        exact = [mpmath.mpf(2) ** (mpmath.mpf(j) / entries) for j in range(entries)]
        hi = [float(v) for v in exact]
        return tuple(hi), tuple(float(v - h) for v, h in zip(exact, hi))


# -a = (8 m + j) ln2/8 + r: e^-a = 2**m 2**(j/8) e^r with |r| <= ln2/16, where
# 8 entries of 2**(j/8) (one permute of a table in one register, see
# _lanes) let a polynomial of degree 5 do what degree 9 did on |r| <= ln2/2.
_EXP2_8_HI, _EXP2_8_LO = _exp2_pairs(8)
_EIGHT_OVER_LN2 = 8 * _INV_LN2
_LN2_8_HI = _LN2_HI / 8  # exact: a power of two apart; k * _LN2_8_HI exact for |k| < 2**21
_LN2_8_LO = _LN2_LO / 8
# (e^r - 1 - r) / r^2 on |r| <= ln2/16: the Remez fit of
# scripts/fit_exp_polynomial.py --table 8 --degree 5 (e^r off by at most
# 2**-57.25, which adds under 1/16 ulp to σ).
_P64 = (
    0.5,
    0.16666666666667193,
    0.04166666661619509,
    0.008333333319185825,
    0.0013889614519209895,
    0.00019842391543869824,
)

# Above these |x| the results no longer change (σ rounds to 1 or 0 and σ'
# to 0); clamping keeps the exponent arithmetic in range and maps ±inf
# onto ordinary numbers. The clamps are selects that let a NaN through, and
# a NaN then reaches every result by plain arithmetic (no final check).
_CLAMP_F64 = 750.0  # e^-750 < 2**-1075, half the smallest subnormal
_CLAMP_F32 = 120.0  # e^-120 < 2**-150, half the smallest float32 subnormal; e^120 < 2**174

# Every stage below takes full_range, a compile-time constant. True: any x.
# False (float64): every |x| is at most NORMAL_RANGE_F64, where the clamp
# does nothing and every value the kernels form is a normal number, so the
# clamp and the subnormal rounding are left out and the power of two goes
# into the quotient's numerator instead of onto its result (selects on a
# constant, which LLVM folds away): the same bits, in less time (Zen 3:
# 14-19 %). The CPU array loops use it (see _kernels); everything else
# passes True. The bound: e^-600 > 2**-866, so a quotient q of the
# normal range is above 2**-870 and the residual of its correction, a
# multiple of ulp(q) 2**-52 when not 0, is at least 2**-975 (and the
# correction 2**-976): normal numbers, exact as the full kernels' are.
NORMAL_RANGE_F64 = 600.0


# Horner's scheme in r**2 over pairs c[i] + c[i+1] r: the FMAs of Horner's
# scheme plus r**2 (which the caller needs anyway), in a chain of 3
# dependent FMAs instead of 5. The different roundings land in the
# polynomial term, scaled by r**2 < 0.002 before it reaches the result.
@njit(inline="always")
def _polynomial5(r, r2, c):
    """c[0] + c[1] r + ... + c[5] r**5, given r2 = r * r."""
    p = fma(fma(c[5], r, c[4]), r2, fma(c[3], r, c[2]))
    return fma(p, r2, fma(c[1], r, c[0]))


@njit(inline="always")
def _pow2(k):
    """2.0**k for an integer k in [-1022, 1023], from its exponent bits."""
    return _int64_bits_to_float64((k + 1023) << 52)


@njit(inline="always")
def _integral_to_float64(k):
    """An int64 |k| < 2**51 as a float64: unlike float(k), this vectorizes
    on CPUs without AVX-512's int64-to-float conversion."""
    return _int64_bits_to_float64(k + _MAGIC_BITS) - _ROUND_MAGIC


@njit(inline="always")
def _pow2_of_integral(kf):
    """2.0**kf for an integral float64 kf in [-1022, 1023]: kf + _ROUND_MAGIC
    holds kf in its low bits, which the shift moves into the exponent."""
    return _int64_bits_to_float64((_float64_to_int64_bits(kf + _ROUND_MAGIC) + 1023) << 52)


# Every kernel below is two stages, each a function of tuples of float64:
# terms (x -> the terms of the quotient) and result (x, terms -> outputs).
# The scalar functions run them back to back, and so do the CPU array
# loops on vectors of lanes (see _kernels and _lanes): the same bits.
@njit(inline="always")
def exp_f64(x, full_range):
    """Stage 1 of the float64 kernels: e^-|x| = (n_hi + n_lo) * 2**m, and
    8 m + j as the bits of (8 m + j) + _ROUND_MAGIC (an integer in stage 2
    without another operation).

    |x| is clamped to _CLAMP_F64 (with full_range); the pair n_hi + n_lo =
    2**(j/8) e^r, in [0.95, 2], carries about 100 bits (within about
    2**-56 of the exact value).
    """
    a = abs(x)
    # A select, not min(): a NaN passes and flows into every result.
    a = select(full_range, select(a > _CLAMP_F64, _CLAMP_F64, a), a)
    shifted = fma(a, -_EIGHT_OVER_LN2, _ROUND_MAGIC)
    kf = shifted - _ROUND_MAGIC  # -round(8a / ln2)
    hi = fma(-kf, _LN2_8_HI, -a)  # exact: kf * _LN2_8_HI has spare low bits
    r = fma(-kf, _LN2_8_LO, hi)  # off by at most 2**-58 (|r| <= ln2/16)
    r2 = r * r
    u = fma(r2, _polynomial5(r, r2, _P64), r)  # e^r - 1
    j = _float64_to_int64_bits(shifted)  # kf mod 8 in the low 3 bits
    table_hi = lookup(_EXP2_8_HI, j)
    # 2**(j/8) e^r = table_hi + (table_hi u + table_lo (1 + u)); the last
    # product is below 2**-57 of it and left out. Fast2Sum: |v| < table_hi.
    v = fma(table_hi, u, lookup(_EXP2_8_LO, j))
    n_hi = table_hi + v
    n_lo = (table_hi - n_hi) + v
    return n_hi, n_lo, shifted


# v * 2**k is formed as (v * 2**(k+600)) * 2**-600: both products are exact,
# and the one rounding the result needs (onto the subnormal grid) is done in
# the normal range by adding and subtracting 2**-422. A subnormal result
# therefore raises no underflow flag, and NumPy's errstate stays silent.
_LDEXP_BIAS = 600
_POW2_MINUS_BIAS = 2.0**-600
_SUBNORMAL_ROUNDER = 2.0**-422  # 2**-1022 * 2**600


@njit(inline="always")
def _ldexp_quiet(v, k):
    """v * 2**k, rounded once, for 2**-4 < v < 2 and -1082 <= k <= 0."""
    w = v * _pow2(k + _LDEXP_BIAS)
    # Below the rounder, w + rounder - rounder rounds w onto the (scaled)
    # subnormal grid; above it the rounder is w itself, and 2w - w = w
    # exactly. One max instead of a compare and a blend.
    rounder = max(w, _SUBNORMAL_ROUNDER)
    return ((w + rounder) - rounder) * _POW2_MINUS_BIAS


@njit(inline="always")
def _residual(q, n_hi, n_lo, d_hi, d_lo):
    """n - q*d for q close to n/d: the FMA makes n_hi - q*d_hi exact."""
    return fma(-q, d_hi, n_hi) + fma(-q, d_lo, n_lo)


@njit(inline="always")
def _divide(n_hi, n_lo, q0, d_hi, d_lo):
    """(n_hi + n_lo) / (d_hi + d_lo) as an unevaluated pair (q, c).

    q0 is about 1/d_hi (:func:`reciprocal`, the one reciprocal the kernels
    take); the correction c comes from the residual n - q*d, so q + c is
    within about half an ulp of the true quotient.
    """
    q = mul(n_hi, q0)
    return q, mul(_residual(q, n_hi, n_lo, d_hi, d_lo), q0)


@njit(inline="always")
def _quotient(n_hi, n_lo, q0, d_hi, d_lo):
    """(n_hi + n_lo) / (d_hi + d_lo) rounded: q + c of _divide in one FMA."""
    q = mul(n_hi, q0)
    return fma(_residual(q, n_hi, n_lo, d_hi, d_lo), q0, q)


@njit(inline="always")
def _exponent(shifted):
    """m of e^-|x| = (n_hi + n_lo) 2**m, from stage 1's 8 m + j."""
    return (_float64_to_int64_bits(shifted) - _MAGIC_BITS) >> 3


@njit(inline="always")
def _denominator(exp, full_range):
    """The denominator 1 + t, t = e^-|x|, in stage 2: (t_hi, t_lo, k, q0,
    d_hi, d_lo), with 1 + t = d_hi + d_lo as an exact pair, q0 ≈ 1/d_hi
    (:func:`reciprocal`, the one of every kernel) and k = kf as an integer.

    t_hi + t_lo is t itself in the normal range; with full_range it is
    (n_hi + n_lo) 2**max(kf, -600): below 2**-600, t no longer matters to
    1 + t, and the cap keeps every value here a normal number (it moves
    d_lo by less than 2**-600, far below an ulp of n_lo and q). The full
    kernels then scale the result by 2**kf instead (see _scale_result).
    """
    n_hi, n_lo, shifted = exp
    k = _exponent(shifted)
    # (The cap is a float max: AVX2 has no 64-bit integer max.)
    scale = select(full_range, _pow2_of_integral(max(_integral_to_float64(k), -float(_LDEXP_BIAS))), _pow2(k))
    # Exact products: a power of two times a normal number. n_hi is in
    # [0.95, 2], so its product is k added to its exponent (an integer
    # add instead of a multiply, which competes with the FMAs).
    t_hi = select(full_range, n_hi * scale, _int64_bits_to_float64(_float64_to_int64_bits(n_hi) + (k << 52)))
    t_lo = n_lo * scale
    # Fast2Sum (t_hi <= 1): (1 - d_hi) + t_hi is exact.
    d_hi = 1.0 + t_hi
    d_lo = ((1.0 - d_hi) + t_hi) + t_lo
    return t_hi, t_lo, k, reciprocal(d_hi), d_hi, d_lo


@njit(inline="always")
def _scale_result(v, k, full_range):
    """The full kernels' result v * 2**k (2**-4 < v < 2, k <= 0), rounded
    onto the subnormal grid if need be; in the normal range the numerator
    already holds 2**k (see _denominator), and v is the result."""
    return select(full_range, _ldexp_quiet(v, k), v)


@njit(inline="always")
def _numerator(exp, t_hi, t_lo, full_range):
    """t as the numerator of t/(1 + t): t_hi + t_lo in the normal range;
    with full_range the pair e^r = n_hi + n_lo, the result to be scaled."""
    n_hi, n_lo, shifted = exp
    return select(full_range, n_hi, t_hi), select(full_range, n_lo, t_lo)


@njit(inline="always")
def _sigmoid_f64(x, exp, t_hi, t_lo, k, q0, d_hi, d_lo, full_range):
    # 1/(1+t) for x >= 0, t/(1+t) for x < 0: one quotient, its numerator
    # chosen first. (A NaN x takes the x >= 0 side, and 1/(1 + NaN) is NaN.)
    negative = x < 0.0
    n_hi, n_lo = _numerator(exp, t_hi, t_lo, full_range)
    v = _quotient(select(negative, n_hi, 1.0), select(negative, n_lo, 0.0), q0, d_hi, d_lo)
    return _scale_result(v, select(negative, k, 0), full_range)


@njit(inline="always")
def _derivative_f64(exp, t_hi, t_lo, k, q0, d_hi, d_lo, full_range):
    # σ' = t/(1+t)^2: the pair t/(1+t) divided once more by 1 + t, which
    # keeps it within an ulp (s * (1 - s) loses all digits in the tails, and
    # σ(x) * σ(-x) would add two roundings).
    n_hi, n_lo = _numerator(exp, t_hi, t_lo, full_range)
    ratio, ratio_lo = _divide(n_hi, n_lo, q0, d_hi, d_lo)
    return _scale_result(_quotient(ratio, ratio_lo, q0, d_hi, d_lo), k, full_range)


@njit(inline="always")
def _sigmoid_f64_scaled(x, exp):
    # σ alone in the normal range: numerator and denominator of _sigmoid_f64
    # times 2**-k, N 2**-k / (2**-k + n) with t = n 2**k. The denominator
    # needs 2**-k (one integer operation) instead of t_hi, t_lo and 2**k
    # (three), and every value formed is the one _sigmoid_f64 forms times
    # 2**-k, exactly (all normal numbers, 2**-k <= 2**866): the same bits.
    n_hi, n_lo, shifted = exp
    p = _pow2(-_exponent(shifted))
    # Fast2Sum: n_hi < 2 and p >= 1, so n_hi's exponent is at most p's.
    d_hi = p + n_hi
    d_lo = ((p - d_hi) + n_hi) + n_lo
    negative = x < 0.0
    return _quotient(select(negative, n_hi, p), select(negative, n_lo, 0.0), reciprocal(d_hi), d_hi, d_lo)


# Stage 2 of each float64 kernel. NaN: the compares may set the invalid
# flag on a NaN; the ufunc loops clear the flags (see _kernels), so NumPy
# never warns.
@njit(inline="always")
def sigmoid_f64_result(x, exp, full_range):
    t_hi, t_lo, k, q0, d_hi, d_lo = _denominator(exp, full_range)
    full = _sigmoid_f64(x, exp, t_hi, t_lo, k, q0, d_hi, d_lo, full_range)
    return (select(full_range, full, _sigmoid_f64_scaled(x, exp)),)


@njit(inline="always")
def sigmoid_derivative_f64_result(x, exp, full_range):
    t_hi, t_lo, k, q0, d_hi, d_lo = _denominator(exp, full_range)
    return (_derivative_f64(exp, t_hi, t_lo, k, q0, d_hi, d_lo, full_range),)


@njit(inline="always")
def sigmoid_and_derivative_f64_result(x, exp, full_range):
    t_hi, t_lo, k, q0, d_hi, d_lo = _denominator(exp, full_range)
    return (
        _sigmoid_f64(x, exp, t_hi, t_lo, k, q0, d_hi, d_lo, full_range),
        _derivative_f64(exp, t_hi, t_lo, k, q0, d_hi, d_lo, full_range),
    )


@njit(inline="always")
def sigmoid_f64(x):
    """σ(x) = 1/(1+e^-x) for a float64, within 1 ulp."""
    return sigmoid_f64_result(x, exp_f64(x, True), True)[0]


@njit(inline="always")
def sigmoid_derivative_f64(x):
    """σ'(x) = σ(x)σ(-x) for a float64, within 2 ulp."""
    return sigmoid_derivative_f64_result(x, exp_f64(x, True), True)[0]


@njit(inline="always")
def sigmoid_and_derivative_f64(x):
    """(σ(x), σ'(x)), bitwise equal to the two separate functions."""
    return sigmoid_and_derivative_f64_result(x, exp_f64(x, True), True)


@njit(inline="always")
def sigmoid_backward_f64(grad_output, output):
    """grad_output * output * (1 - output), the backprop step from σ's output."""
    return grad_output * (output * (1.0 - output))


# --------------------------------------------------------------------------
# float16 results: float64 rounded once to binary16 (to nearest, ties to
# even), from the bits. NumPy's astype(float16) gives the same bits but
# takes about 65 ns for each result that is subnormal in float16 (it raises
# the underflow flag the slow way), which σ and σ' are for x < -9.7: most
# of a float16 call's time. Integer operations and selects only, so a loop
# of it vectorizes.
# --------------------------------------------------------------------------
@njit(inline="always")
def _round_half_even(value, shift):
    """value >> shift rounded to nearest, ties to even (1 <= shift <= 63)."""
    kept = value >> shift
    rest = value & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    return kept + select((rest > half) | ((rest == half) & ((kept & 1) == 1)), 1, 0)


@njit(inline="always")
def float16_bits(v):
    """The binary16 bits (an int64) of the float64 v rounded to nearest even."""
    bits = _float64_to_int64_bits(v)
    sign = (bits >> 48) & 0x8000
    exponent = (bits >> 52) & 0x7FF
    mantissa = bits & 0xFFFFFFFFFFFFF
    e = exponent - 1023
    # Normal results: a carry out of the 10 mantissa bits goes into the
    # exponent, up to infinity (0x7C00) for 65520 and above.
    normal = _round_half_even(((e + 15) << 52) | mantissa, 42)
    # Subnormal results (2**-25 <= |v| < 2**-14): the significand on the grid
    # of 2**-24 (rounding up to 2**-14 gives its normal bits, 0x400).
    subnormal = _round_half_even(mantissa | (1 << 52), max(min(28 - e, 63), 1))
    finite = select(e >= -14, select(e > 15, 0x7C00, normal), select(e >= -25, subnormal, 0))
    nan = 0x7C00 + (mantissa >> 42)  # NaN keeps its payload's top bits (as NumPy), and stays a NaN:
    nan = select(nan == 0x7C00, 0x7C01, nan)
    special = select(mantissa == 0, 0x7C00, nan)
    return sign | select(exponent == 0x7FF, special, finite)


# --------------------------------------------------------------------------
# float32, two ways by |x|:
#
# * |x| <= FAST_RANGE_F32 (64): in float32 arithmetic, with pairs of
#   float32 where one float32 is not enough. The CPU array loops run this as
#   16-lane vector code (see _lanes): twice the lanes of float64 arithmetic,
#   and no conversions. e^-x = 2**m * 2**(j/16) * e^u with |u| <= ln2/32
#   (-x = k ln2/16 + u, k = 16 m + j), 2**(j/16) = hi_j e^rho_j from two
#   tables of 16 float32 (rho_j joins u's low part), e^u - 1 - u as u**2
#   times a degree-2 minimax polynomial (e^u within 2**-37.4); t = e^-x
#   and d = 1 + t as pairs; σ = 1/d and σ' = t/d**2 corrected by the
#   residual of the one division, exact by the FMA, as in float64. About
#   2**-35 relative error before the one final rounding (all 2**32 inputs:
#   scripts/check_float32_exhaustive.py; figures in the README). About 34
#   vector operations per 16 elements for σ.
#   A NaN takes this path too: NaN flows through every operation, so its
#   results are NaN, without a second pass (NaN-riddled data, missing
#   values, would otherwise run at the wide path's speed, slower than the
#   NumPy baseline from 10 % NaN).
# * anything else (|x| > 64, inf: what subnormal results and the far tails
#   need): computed in float64 and rounded once (_wide below). The array
#   loops run it, as 16-lane vector code in float64 lanes too, for the
#   lanes outside the fast range only.
#
# Both are written with the primitives fma, mul, select, reciprocal, f32,
# bits32, from_bits32, lookup, types.float64/float32 and the bit casts of float64
# only, and call no functions but those of this module: _lanes runs the
# same Python code on vectors.
# --------------------------------------------------------------------------
FAST_RANGE_F32 = 64.0  # e^64 < 2**93: t, its low half and 2**m stay normal numbers


@intrinsic
def bits32(typingctx, value):
    """The bits of a float32 as an int32."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(value), codegen


@intrinsic
def from_bits32(typingctx, bits):
    """A float32 from the low 32 bits of an integer."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = args[0]
        if value.type.width != 32:
            value = builder.trunc(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(bits), codegen


f32 = types.float32  # f32(c): a float32 constant (a plain float for _lanes)


def _exp2_table():
    """2**(j/16) = hi e^rho, j = 0..15: hi rounded to float32, and
    rho = ln(2**(j/16) / hi) (|rho| < 2**-24) in float32."""
    hi, rho = [], []
    for j in range(16):
        value = 2.0 ** (j / 16)  # float64: within 2**-53
        hi.append(np.float32(value))
        # ln(1 + r) = r - r**2/2 + ..., and r**2 < 2**-48 is far below rho's precision.
        rho.append(np.float32(float((Fraction(value) - Fraction(float(hi[-1]))) / Fraction(float(hi[-1])))))
    return tuple(hi), tuple(rho)


_EXP2_HI, _EXP2_RHO = _exp2_table()
# hi_j with j * 2**19 taken off its bits (a float32 near 1, 2**(j/16) - 1 <=
# j/16): adding the rounded sum's bits shifted left by 19, (16 m + j) << 19
# = (m << 23) + (j << 19), gives the bits of 2**m hi_j.
_EXP2_HI_LESS_J = tuple(np.int32(hi.view(np.int32) - (j << 19)).view(np.float32) for j, hi in enumerate(_EXP2_HI))
_SIXTEEN_OVER_LN2 = 16 / 0.6931471805599453
# ln2/16 split in two float32: x + kf * _LN2_16_HI is exact for the kf
# (|kf| <= 1478) and x of the fast range (the result needs at most 24 bits).
_LN2_16 = 0.6931471805599453 / 16
_LN2_16_HI = float(np.float32(_LN2_16))
_LN2_16_LO = float(np.float32(_LN2_16 - _LN2_16_HI))
# (e^u - 1 - u)/u**2 on |u| <= ln2/32: minimax, e^u within 2**-37.4
# (Lawson's algorithm, scripts/fit_exp_polynomial.py --float32-tail; the
# degree-5 Taylor polynomial, within 2**-42.6, costs an FMA more and rounds
# no more results correctly).
_EXP_TAIL_F32 = (0.5, 0.1666700690984726, 0.04166765883564949)
# Adding 1.5 * 2**23 rounds a float32 of magnitude < 2**22 to an integer k,
# which the sum's low 23 bits then hold (two's complement, |k| <= 1478): for
# k = 16 m + j, the lookup index j in the low 4 bits and m above them.
_ROUND_MAGIC_F32 = 12582912.0


@njit(inline="always")
def exp_pair_f32(x):
    """Stage 1 of the float32 kernels, |x| <= FAST_RANGE_F32: t = e^-x and
    d = 1 + t as pairs of float32, and q0 = 1/d_hi within 1 ulp
    (:func:`reciprocal`): (t_hi, t_lo, d_hi, d_lo, q0). e^-x, not e^-|x|:
    up to e^64, far inside float32's range, and then σ = 1/d for every x,
    with no choice of numerator."""
    minus_x = -x
    shifted = fma(minus_x, f32(_SIXTEEN_OVER_LN2), f32(_ROUND_MAGIC_F32))
    kf = shifted - f32(_ROUND_MAGIC_F32)  # k = round(-16 x / ln2) = 16 m + j, 0 <= j < 16
    k_bits = bits32(shifted)  # 16 m + j in the low 23 bits
    # e^-x = 2**m hi_j e^(u_hi + u_lo), from -x = k ln2/16 + u and
    # 2**(j/16) = hi_j e^rho_j: u_hi exact, u_lo = -(k ln2/16's low part)
    # + rho_j within 2**-42.
    u_hi = fma(kf, f32(-_LN2_16_HI), minus_x)
    u_lo = fma(kf, f32(-_LN2_16_LO), lookup(_EXP2_RHO, k_bits))
    u = u_hi + u_lo
    # e^u = 1 + u_hi + v, v = u_lo + e^u - 1 - u.
    q = fma(fma(u, f32(_EXP_TAIL_F32[2]), f32(_EXP_TAIL_F32[1])), u, f32(_EXP_TAIL_F32[0]))
    v = fma(mul(u, u), q, u_lo)
    # t = T (1 + u_hi + v) = t_hi + t_lo with T = 2**m hi_j: the product
    # T u_hi exact by its FMA residual, the sum by Fast2Sum (|T| > |p|);
    # t_lo carries up to 2**-12 t, unnormalized. T from integer bits (|m| <=
    # 93; the bits of the sum above k shift out): one add where a shift, a
    # mask and a product scaled hi_j, the same bits for all 2**32 inputs.
    table_hi = from_bits32(bits32(lookup(_EXP2_HI_LESS_J, k_bits)) + (k_bits << 19))
    p = mul(table_hi, u_hi)
    tail = fma(table_hi, v, fma(table_hi, u_hi, -p))
    t_hi = table_hi + p
    t_lo = ((table_hi - t_hi) + p) + tail
    # d = 1 + t normalized: the corrections below divide by d_hi alone,
    # which must be d to 2**-24, so d_hi is 1 + (t_hi + t_lo) (t_lo can be
    # 2**-12 t). d_lo is then exact but for the last add (Fast2Sum of the
    # larger and the smaller of 1 and t_hi: the larger is within a factor 2
    # of d_hi, and what is left of it within a factor 2 of the smaller).
    d_hi = f32(1.0) + (t_hi + t_lo)
    small_t = t_hi < f32(1.0)
    larger = select(small_t, f32(1.0), t_hi)
    smaller = select(small_t, t_hi, f32(1.0))
    d_lo = ((larger - d_hi) + smaller) + t_lo
    return t_hi, t_lo, d_hi, d_lo, reciprocal(d_hi)


# Stage 2: σ = 1/d and σ' = t/d**2 from the one reciprocal q0 of d_hi,
# each corrected by the residual 1 - q0 d (by FMAs: exact, or within 2**-48
# where q0 is 1 ulp off), so that the fused kernel gives the bits of the
# separate ones. (x is unused: the
# stages of every kernel take the same arguments.)
@njit(inline="always")
def sigmoid_f32_from_pair(x, terms):
    t_hi, t_lo, d_hi, d_lo, q0 = terms
    eps = fma(-q0, d_lo, fma(-q0, d_hi, f32(1.0)))
    return fma(eps, q0, q0)


@njit(inline="always")
def sigmoid_derivative_f32_from_pair(x, terms):
    t_hi, t_lo, d_hi, d_lo, q0 = terms
    # 1/d = q0 (1 + eps); t/d**2 = (t_hi q0 (1 + 2 eps) + t_lo q0) q0 with
    # t_hi q0 = a + a_error (an exact product): a q0 plus the small terms
    # times q0, rounded once by the last FMA. (The small terms, up to 2**-12
    # of a, within 2**-23 of themselves; eps**2 and t_lo q0 eps, below
    # 2**-34, left out.) Two operations fewer and a shorter chain than
    # rounding a q0 as a pair first: 2-10 % faster, as accurate.
    eps = fma(-q0, d_lo, fma(-q0, d_hi, f32(1.0)))
    a = mul(t_hi, q0)
    a_error = fma(t_hi, q0, -a)
    small = fma(a, eps + eps, a_error + mul(t_lo, q0))
    return fma(a, q0, mul(small, q0))


# Where a float32 result no longer depends on x, once rounded: σ = 1 from
# x >= 64 (from 17.33 on, in fact), σ = 0 and σ' = 0 from |x| >= 104
# (e^-104 < 2**-150, half the smallest subnormal), infinities included.
# The CPU vector code stores these by a cheap vector pass of their own (a
# -inf mask, saturated logits: 0.6-0.75 ns per element, one core, where
# the wide functions below take 1.1-1.3); each returns (known, value). The
# wide functions give the same values there (the tests check it).
@njit(inline="always")
def sigmoid_f32_saturated(x):
    return (x >= f32(FAST_RANGE_F32)) | (x <= f32(-104.0)), select(x > f32(0.0), f32(1.0), f32(0.0))


@njit(inline="always")
def sigmoid_derivative_f32_saturated(x):
    return abs(x) >= f32(104.0), f32(0.0)


# The wide range: e^-x = s P / Q in float64 (to about 2**-43; s = 2**k),
# e^r = P/Q a minimax rational, (E + rO)/(E - rO) with E = 1 + e0 w + e1 w**2,
# O = o0 + o1 w, w = r**2 (scripts/fit_exp_polynomial.py --float32).
# Then σ = Q/(Q + sP) and σ' = sP Q/(Q + sP)**2, rounded once to float32
# (which rounds subnormal results correctly by itself). x is clamped by
# selects that let a NaN through, so a NaN flows into every result.
_E32 = (0.1071427690339018, 0.0005952294606840977)
_O32 = (0.5000000000009355, 0.011904717797268)


@njit(inline="always")
def _exp_f32_wide(x):
    v = types.float64(x)
    v = select(v > _CLAMP_F32, _CLAMP_F32, v)
    v = select(v < -_CLAMP_F32, -_CLAMP_F32, v)
    shifted = fma(v, -_INV_LN2, _ROUND_MAGIC)
    kf = shifted - _ROUND_MAGIC
    k = _float64_to_int64_bits(shifted) - _MAGIC_BITS
    # |k| <= 174: r = -v - k ln2 rounded once is off by at most 2**-46.
    r = fma(-kf, _LN2, -v)
    w = r * r
    even = fma(fma(_E32[1], w, _E32[0]), w, 1.0)
    odd = mul(r, fma(_O32[1], w, _O32[0]))
    return _pow2(k), even + odd, even - odd


@njit(inline="always")
def sigmoid_f32_wide(x):
    s, p, q = _exp_f32_wide(x)
    return types.float32(q * (1.0 / fma(s, p, q)))


@njit(inline="always")
def sigmoid_derivative_f32_wide(x):
    s, p, q = _exp_f32_wide(x)
    inv = 1.0 / fma(s, p, q)
    return types.float32(mul(s * p, inv) * mul(q, inv))


@njit(inline="always")
def sigmoid_f32(x):
    """σ(x) for a float32: within 0.501 ulp, 99.99 % correctly rounded."""
    if abs(x) > f32(FAST_RANGE_F32):  # a NaN stays in the fast range (see above)
        return sigmoid_f32_wide(x)
    return sigmoid_f32_from_pair(x, exp_pair_f32(x))


@njit(inline="always")
def sigmoid_derivative_f32(x):
    """σ'(x) for a float32."""
    if abs(x) > f32(FAST_RANGE_F32):
        return sigmoid_derivative_f32_wide(x)
    return sigmoid_derivative_f32_from_pair(x, exp_pair_f32(x))


@njit(inline="always")
def sigmoid_and_derivative_f32(x):
    """(σ(x), σ'(x)) for a float32, bitwise equal to the separate functions."""
    if abs(x) > f32(FAST_RANGE_F32):
        return sigmoid_f32_wide(x), sigmoid_derivative_f32_wide(x)
    terms = exp_pair_f32(x)
    return sigmoid_f32_from_pair(x, terms), sigmoid_derivative_f32_from_pair(x, terms)


@njit(inline="always")
def sigmoid_backward_f32(grad_output, output):
    """grad_output * output * (1 - output) in float32."""
    return grad_output * (output * (types.float32(1.0) - output))
