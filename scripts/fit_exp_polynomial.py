"""Fit the polynomial of fastsig's float64 e^r and report its error.

fastsig computes e^r on |r| <= ln2/2 as 1 + r + r**2 * p(r), where p
approximates (e^r - 1 - r) / r**2 and its constant term is exactly 1/2.
This script finds the other coefficients with the Remez exchange algorithm,
minimizing the largest error of e^r itself, in 200-bit arithmetic; then
rounds them to float64 and measures that error again for the rounded
coefficients. It prints the tuple that ``fastsig/_math.py`` holds as _P64.

    python scripts/fit_exp_polynomial.py --degree 9

An error of e^r of 2**-57 adds at most about 1/16 ulp to σ and 1/8 ulp to
σ' (their relative errors are at most 1/2 and 1 times that of e^-|x|, and
e^r >= 0.7).
"""

from __future__ import annotations

import argparse

import mpmath

mpmath.mp.prec = 200
HALF_LN2 = mpmath.log(2) / 2


def error(coefficients: list, r: mpmath.mpf) -> mpmath.mpf:
    """e^r - (1 + r + r**2 p(r)) in 200-bit arithmetic."""
    p = mpmath.polyval([mpmath.mpf(c) for c in reversed(coefficients)], r)
    return mpmath.exp(r) - 1 - r - r**2 * p


def remez(degree: int, grid: list, iterations: int = 20) -> list:
    """c[0] = 1/2 and c[1..degree] that minimize max |error| on the grid.

    With c[0] fixed the error is r**3 times a polynomial remainder, so it
    changes sign at 0 on its own: the alternation is counted on
    sign(r) * error, and the reference keeps away from 0.
    """
    unknowns = degree + 1  # c[1..degree] and the levelled error
    reference = [HALF_LN2 * mpmath.cos(mpmath.pi * (unknowns - 1 - i) / (unknowns - 1)) for i in range(unknowns)]
    reference = [r if abs(r) > 1e-3 else mpmath.mpf(1e-3) for r in reference]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--degree", type=int, default=9, help="degree of p (default 9)")
    parser.add_argument("--samples", type=int, default=4001, help="grid points on [-ln2/2, ln2/2]")
    args = parser.parse_args()
    grid = [-HALF_LN2 + 2 * HALF_LN2 * i / (args.samples - 1) for i in range(args.samples)]
    coefficients = [float(c) for c in remez(args.degree, grid)]
    print("_P64 = (")
    for c in coefficients:
        print(f"    {c!r},")
    print(")")
    worst = max(abs(error(coefficients, r)) for r in grid)
    print(f"max |error of e^r| with float64 coefficients: {mpmath.nstr(worst, 3)} = 2**{mpmath.nstr(mpmath.log(worst, 2), 4)}")


if __name__ == "__main__":
    main()
