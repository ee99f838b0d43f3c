"""Accuracy against the 200-bit mpmath reference, and the exact special values."""

import numpy as np
import pytest

import fastsig
from fastsig import accuracy

POINTS = 10_000


@pytest.fixture(scope="module", params=["float64", "float32", "float16"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(scope="module")
def points(dtype):
    x = accuracy.sample(dtype, POINTS, seed=7)
    assert x.size >= POINTS * 0.99
    return x


@pytest.mark.parametrize("func", accuracy.FUNCTIONS)
def test_ulp_bounds(func, dtype, points):
    err, exact = accuracy.ulp_errors(getattr(fastsig, func)(points), points, func)
    bound = 1.0 if func == "sigmoid" else 2.0
    assert err.max() <= bound, f"{func} {dtype}: max {err.max()} ulp at x={points[err.argmax()]!r}"
    if dtype == np.float16:  # every float16 input, correctly rounded
        assert exact.all(), points[~exact][:10]
    elif dtype == np.float32:
        assert exact.mean() >= 0.999
    if func == "sigmoid":
        # Beyond the bound: the correction steps make float64 nearly
        # always correctly rounded too. Guard it against regressions.
        assert exact.mean() >= 0.99


def test_float64_subnormal_tail_is_not_flushed():
    """σ(x) for x in [-745, -708] is subnormal: NumPy, SciPy and torch return 0 there."""
    x = np.linspace(-745.1, -708.4, 2001)
    for func in accuracy.FUNCTIONS:
        y = getattr(fastsig, func)(x)
        assert (y > 0).all()
        err, _ = accuracy.ulp_errors(y, x, func)
        assert err.max() <= 1.0


def test_float32_subnormal_tail():
    x = np.linspace(-103.2, -87.4, 2001, dtype=np.float32)
    for func in accuracy.FUNCTIONS:
        y = getattr(fastsig, func)(x)
        assert (y > 0).all() and y.dtype == np.float32
        err, exact = accuracy.ulp_errors(y, x, func)
        assert err.max() <= 1.0 and exact.mean() >= 0.999


def test_derivative_keeps_relative_accuracy_where_baseline_fails():
    x = np.array([4.0, 15.0, 40.0, 300.0, 700.0])
    ours = fastsig.sigmoid_derivative(x)
    err, _ = accuracy.ulp_errors(ours, x, "sigmoid_derivative")
    assert err.max() <= 1.0
    with np.errstate(all="ignore"):
        theirs = fastsig.baseline.sigmoid_derivative(x)
    base_err, _ = accuracy.ulp_errors(theirs, x, "sigmoid_derivative")
    assert base_err[1] > 1000 and (theirs[2:] == 0).all()  # what we fix


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_special_values(dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=dtype)
    s = fastsig.sigmoid(x)
    ds = fastsig.sigmoid_derivative(x)
    assert s[:4].tolist() == [0.5, 0.5, 1.0, 0.0]
    assert ds[:4].tolist() == [0.25, 0.25, 0.0, 0.0]
    assert np.isnan(s[4]) and np.isnan(ds[4])
    big = np.resize(x, 100_000)  # the parallel path too
    assert np.array_equal(fastsig.sigmoid(big), np.resize(s, 100_000), equal_nan=True)
    assert np.array_equal(fastsig.sigmoid_derivative(big), np.resize(ds, 100_000), equal_nan=True)


def test_extreme_arguments():
    info = np.finfo(np.float64)
    x = np.array([info.max, -info.max, info.smallest_subnormal, -info.smallest_subnormal])
    assert fastsig.sigmoid(x).tolist() == [1.0, 0.0, 0.5, 0.5]
    assert fastsig.sigmoid_derivative(x).tolist() == [0.0, 0.0, 0.25, 0.25]
    assert fastsig.sigmoid(-745.0) == 5e-324
    assert fastsig.sigmoid(-746.0) == 0.0


def test_float32_random_bit_patterns_against_longdouble():
    """A sample of the exhaustive float32 check (scripts/check_float32_exhaustive.py)."""
    stats = accuracy.float32_check(np.random.default_rng(3).integers(0, 2**32, 1 << 18, dtype=np.uint64).astype(np.uint32))
    for func, (max_ulp, exact_share, _) in stats.items():
        assert max_ulp <= 1.0, func
        assert exact_share >= 0.999, func
