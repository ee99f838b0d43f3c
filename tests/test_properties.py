"""Hypothesis properties of σ and σ' that hold for every input."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fastsig

floats64 = st.floats(allow_nan=False, width=64)
floats32 = st.floats(allow_nan=False, width=32)


@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, st.integers(1, 64), elements=floats64))
def test_bounds_and_symmetry_float64(x):
    s = fastsig.sigmoid(x)
    ds = fastsig.sigmoid_derivative(x)
    assert ((0 <= s) & (s <= 1)).all()
    assert ((0 <= ds) & (ds <= 0.25)).all()
    assert np.array_equal(fastsig.sigmoid_derivative(-x), ds)  # σ' is even
    # σ(-x) = 1 - σ(x) where representable: 1 - σ(x) is exact for x >= 0,
    # and σ(-x) is the finer-grained value, so they agree to within σ(x)'s ulp.
    pos = np.abs(x)
    s_pos = fastsig.sigmoid(pos)
    assert (np.abs(fastsig.sigmoid(-pos) - (1 - s_pos)) <= np.spacing(s_pos)).all()


@settings(max_examples=300, deadline=None)
@given(arrays(np.float32, st.integers(1, 64), elements=floats32))
def test_bounds_and_symmetry_float32(x):
    s = fastsig.sigmoid(x)
    assert s.dtype == np.float32 and ((0 <= s) & (s <= 1)).all()
    pos = np.abs(x)
    s_pos = fastsig.sigmoid(pos)
    assert (np.abs(fastsig.sigmoid(-pos) - (1 - s_pos)) <= np.spacing(s_pos)).all()


@settings(max_examples=300, deadline=None)
@given(floats64, floats64)
def test_monotonic(a, b):
    lo, hi = min(a, b), max(a, b)
    assert fastsig.sigmoid(lo) <= fastsig.sigmoid(hi)
    # σ' decreases away from 0
    if 0 <= lo:
        assert fastsig.sigmoid_derivative(lo) >= fastsig.sigmoid_derivative(hi)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.integers(1, 32), elements=floats64))
def test_fused_equals_separate(x):
    s, ds = fastsig.sigmoid_and_derivative(x)
    assert np.array_equal(s, fastsig.sigmoid(x)) and np.array_equal(ds, fastsig.sigmoid_derivative(x))
