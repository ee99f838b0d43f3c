"""Fit fastsig's approximations of e^r (float64 polynomial, float32 rational) and report their errors.

fastsig's float64 kernels compute e^r on |r| <= ln2/16 (after a table of
2**(j/8): --table 8) as 1 + r + r**2 * p(r), where p approximates
(e^r - 1 - r) / r**2 and its constant term is exactly 1/2. This script finds
the other coefficients with the Remez exchange algorithm, minimizing the
largest error of e^r itself, in 200-bit arithmetic; then rounds them to
float64 and measures that error again for the rounded coefficients. It
prints the tuple that ``fastsig/_math.py`` holds as _P64.

    python scripts/fit_exp_polynomial.py --table 8 --degree 5

(Without a table, on |r| <= ln2/2, degree 9 gives about the same error:
what earlier versions used.)

An error of e^r of 2**-57 adds at most about 1/16 ulp to σ and 1/8 ulp to
σ' (their relative errors are at most 1/2 and 1 times that of e^-|x|, and
e^r >= 0.7).

The float32 kernels use e^r ~ (E + r O) / (E - r O) with E = 1 + e0 w + e1 w**2
and O = o0 + o1 w (w = r**2), a rational form whose one division is σ's own:

    python scripts/fit_exp_polynomial.py --float32

starts from the [4/4] Padé approximant (2**-38.4) and minimizes the largest
relative error of e^r with Nelder-Mead in long double (needs SciPy, from the
`bench` extra); it prints _E32 and _O32 (about 2**-43.2). Those serve |x| > 64;
the float32 fast range (float32 arithmetic) uses e^u = 1 + u + u**2 (c0 + c1 u
+ c2 u**2) on |u| <= ln2/32:

    python scripts/fit_exp_polynomial.py --float32-tail

prints _EXP_TAIL_F32 (about 2**-37.4).
"""

from __future__ import annotations

import argparse
import math

import mpmath

mpmath.mp.prec = 200
HALF_LN2 = mpmath.log(2) / 2


def error(coefficients: list, r: mpmath.mpf) -> mpmath.mpf:
    """e^r - (1 + r + r**2 p(r)) in 200-bit arithmetic."""
    p = mpmath.polyval([mpmath.mpf(c) for c in reversed(coefficients)], r)
    return mpmath.exp(r) - 1 - r - r**2 * p


def remez(degree: int, grid: list, bound: mpmath.mpf = HALF_LN2, iterations: int = 20) -> list:
    """c[0] = 1/2 and c[1..degree] that minimize max |error| on the grid.

    With c[0] fixed the error is r**3 times a polynomial remainder, so it
    changes sign at 0 on its own: the alternation is counted on
    sign(r) * error, and the reference keeps away from 0.
    """
    unknowns = degree + 1  # c[1..degree] and the levelled error
    reference = [bound * mpmath.cos(mpmath.pi * (unknowns - 1 - i) / (unknowns - 1)) for i in range(unknowns)]
    reference = [r if abs(r) > bound / 300 else bound / 300 for r in reference]
    for _ in range(iterations):
        matrix = mpmath.matrix(unknowns, unknowns)
        rhs = mpmath.matrix(unknowns, 1)
        for i, r in enumerate(reference):
            for j in range(1, degree + 1):
                matrix[i, j - 1] = r ** (j + 2)
            matrix[i, degree] = (-1) ** i * mpmath.sign(r)
            rhs[i] = mpmath.exp(r) - 1 - r - r**2 / 2
        solution = mpmath.lu_solve(matrix, rhs)
        coefficients = [mpmath.mpf(1) / 2] + [solution[j] for j in range(degree)]
        # The new reference: the largest |error| of each run of one sign.
        runs: list = []
        for r in grid:
            e = error(coefficients, r) * mpmath.sign(r)
            if e == 0:
                continue
            if not runs or runs[-1][0] != (e > 0):
                runs.append([e > 0, r, e])
            elif abs(e) > abs(runs[-1][2]):
                runs[-1][1:] = [r, e]
        while len(runs) > unknowns:
            runs.pop(0 if abs(runs[0][2]) < abs(runs[-1][2]) else -1)
        if len(runs) < unknowns:
            break
        reference = [run[1] for run in runs]
    return coefficients


def fit_float32_rational(samples: int) -> None:
    """Fit and print _E32 and _O32 (see the module docstring)."""
    import numpy as np
    from scipy.optimize import minimize

    # A little beyond ln2/2: the float32 kernels' one-FMA reduction can
    # overshoot it by a few ulps.
    r = np.linspace(-1, 1, samples, dtype=np.longdouble) * np.longdouble(float(HALF_LN2)) * np.longdouble(1.0001)
    w, exact = r * r, np.exp(r)

    def log2_max_error(c) -> float:
        e0, e1, o0, o1 = (np.longdouble(v) for v in c)
        even, odd = 1 + e0 * w + e1 * w * w, r * (o0 + o1 * w)
        return float(np.log2(np.abs((even + odd) / (even - odd) / exact - 1).max()))

    coefficients = np.array([3 / 28, 1 / 1680, 1 / 2, 1 / 84])  # the [4/4] Padé approximant
    print(f"Padé [4/4]: max relative error of e^r 2**{log2_max_error(coefficients):.2f}")
    for _ in range(6):  # restarts: Nelder-Mead stalls on the flat minimax surface
        coefficients = minimize(log2_max_error, coefficients, method="Nelder-Mead",
                                options=dict(xatol=1e-18, fatol=1e-6, maxiter=20000, maxfev=20000)).x
    e0, e1, o0, o1 = (float(c) for c in coefficients)
    print(f"_E32 = ({e0!r}, {e1!r})")
    print(f"_O32 = ({o0!r}, {o1!r})")
    print(f"max relative error of e^r: 2**{log2_max_error(coefficients):.2f}")


def fit_float32_tail(samples: int) -> None:
    """The float32 fast-range polynomial: (e^u - 1 - u)/u**2 ~ c0 + c1 u + c2 u**2
    on |u| <= ln2/32, minimax for the error of e^u (Lawson's iteratively
    reweighted least squares), then measured with float32 coefficients."""
    import numpy as np

    bound = math.log(2) / 32 * 1.001  # u's rounding reaches a little past ln2/32
    nodes = np.cos(np.pi * (np.arange(samples) + 0.5) / samples) * bound
    rows = np.array([[u**2, u**3, u**4] for u in nodes])
    target = np.array([float(mpmath.expm1(mpmath.mpf(u)) - u) for u in nodes])
    weights = np.full(samples, 1.0 / samples)
    for _ in range(200):
        scale = np.sqrt(weights)
        coefficients, *_ = np.linalg.lstsq(rows * scale[:, None], target * scale, rcond=None)
        residual = np.abs(rows @ coefficients - target)
        weights = weights * residual / np.sum(weights * residual)
    rounded = [float(np.float32(c)) for c in coefficients]
    grid = np.linspace(-bound, bound, 20001)
    worst = max(abs(mpmath.expm1(mpmath.mpf(u)) - u - u * u * (rounded[0] + u * (rounded[1] + u * rounded[2]))) for u in grid)
    print(f"_EXP_TAIL_F32 = ({rounded[0]!r}, {rounded[1]!r}, {rounded[2]!r})")
    print(f"max |error of e^u| with float32 coefficients: 2**{mpmath.nstr(mpmath.log(worst, 2), 4)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--degree", type=int, default=9, help="degree of p (default 9)")
    parser.add_argument("--samples", type=int, default=4001, help="grid points on [-ln2/2, ln2/2]")
    parser.add_argument("--table", type=int, default=1,
                        help="entries of a table of 2**(j/N) in the reduction: |r| <= ln2/(2N) (default 1: no table)")
    parser.add_argument("--float32", action="store_true", help="fit the float32 rational instead")
    parser.add_argument("--float32-tail", action="store_true", help="fit the float32 fast-range polynomial instead")
    args = parser.parse_args()
    if args.float32_tail:
        fit_float32_tail(400)
        return
    if args.float32:
        fit_float32_rational(max(args.samples, 20001))
        return
    bound = HALF_LN2 / args.table * mpmath.mpf(1.0001)  # the rounded reduction reaches a little past it
    grid = [-bound + 2 * bound * i / (args.samples - 1) for i in range(args.samples)]
    coefficients = [float(c) for c in remez(args.degree, grid, bound)]
    print("_P64 = (")
    for c in coefficients:
        print(f"    {c!r},")
    print(")")
    worst = max(abs(error(coefficients, r)) for r in grid)
    print(f"max |error of e^r| with float64 coefficients: {mpmath.nstr(worst, 3)} = 2**{mpmath.nstr(mpmath.log(worst, 2), 4)}")


if __name__ == "__main__":
    main()
