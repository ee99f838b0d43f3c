"""The public API behaves as a NumPy ufunc would: dtypes, shapes, out=, errors."""

import concurrent.futures
import math
import os
import subprocess
import sys
import textwrap
import warnings

import numba
import numpy as np
import pytest

import fastsig
from fastsig import _kernels, _math

from scalar_reference import scalar_math

UNARY = [fastsig.sigmoid, fastsig.sigmoid_derivative]
BIG = 200_000  # above the parallel threshold


def both(x, **kw):
    return fastsig.sigmoid_and_derivative(x, **kw)


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("func", UNARY)
@pytest.mark.parametrize(
    "dtype, expected",
    [
        (np.float64, np.float64), (np.float32, np.float32), (np.float16, np.float16),
        (np.int8, np.float64), (np.int64, np.float64), (np.uint16, np.float64), (np.bool_, np.float64),
    ],
)
def test_result_dtype(func, dtype, expected):
    x = np.array([0, 1, 2, 3], dtype=dtype)
    assert func(x).dtype == expected
    s, ds = both(x)
    assert s.dtype == ds.dtype == expected
    assert fastsig.sigmoid_backward(x, x).dtype == expected


@pytest.mark.parametrize("func", UNARY)
def test_integer_input_matches_float64(func):
    x = np.arange(-50, 50)
    assert np.array_equal(func(x), func(x.astype(np.float64)))


@pytest.mark.parametrize("func", UNARY + [both])
@pytest.mark.parametrize(
    "bad",
    [np.array([1 + 2j]), np.array([object()], dtype=object), np.array(["a"]),
     np.array(["2020-01-01"], dtype="datetime64[D]"), np.array([1], dtype="timedelta64[s]"), "text", [1j]],
)
def test_bad_dtypes_raise_type_error_naming_the_dtype(func, bad):
    with pytest.raises(TypeError, match=r"does not accept \S+ input: it takes float16, float32, float64"):
        func(bad)


def test_longdouble_is_refused_clearly():
    with pytest.raises(TypeError, match="longdouble|float128|float96"):
        fastsig.sigmoid(np.ones(2, dtype=np.longdouble))


# ---------------------------------------------------------------- scalars and shapes
@pytest.mark.parametrize("func", UNARY)
def test_scalars_give_numpy_scalars(func):
    for value, kind in [(0.5, np.float64), (3, np.float64), (True, np.float64), (np.float32(2), np.float32), (np.float16(1), np.float16)]:
        r = func(value)
        assert isinstance(r, kind) and np.ndim(r) == 0
    r = func(np.array(1.5))
    assert isinstance(r, np.float64)
    s, ds = both(1.5)
    assert isinstance(s, np.float64) and isinstance(ds, np.float64)


@pytest.mark.parametrize("func", UNARY)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("n", [7, BIG])
def test_layouts_match_contiguous(func, dtype, n, rng):
    base = (rng.standard_normal((n // 7 + 1) * 14) * 20).astype(dtype).reshape(-1, 7)
    expected = func(np.ascontiguousarray(base))
    views = {
        "fortran": np.asfortranarray(base),
        "reversed": base[::-1, ::-1],
        "sliced": base[::2, 1:5],
        "byteswapped": base.astype(base.dtype.newbyteorder()),
    }
    ro = base.copy()
    ro.flags.writeable = False
    views["readonly"] = ro
    for name, v in views.items():
        got = func(v)
        ref = expected if name not in ("reversed", "sliced") else func(np.ascontiguousarray(v))
        if name == "reversed":
            ref = expected[::-1, ::-1]
        if name == "sliced":
            ref = expected[::2, 1:5]
        assert got.dtype == np.dtype(dtype), name
        assert got.shape == v.shape, name
        assert np.array_equal(got, ref, equal_nan=True), name


@pytest.mark.parametrize("func", UNARY + [both])
@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0, 2)])
def test_empty(func, shape):
    r = func(np.empty(shape))
    for a in r if isinstance(r, tuple) else (r,):
        assert a.shape == shape and a.dtype == np.float64


def test_lists_and_nested_lists():
    assert fastsig.sigmoid([[0, 0], [0, 0]]).tolist() == [[0.5, 0.5], [0.5, 0.5]]


# ---------------------------------------------------------------- out=
@pytest.mark.parametrize("func", UNARY)
@pytest.mark.parametrize("n", [10, BIG])
def test_out(func, n, rng):
    x = rng.standard_normal(n)
    out = np.empty_like(x)
    assert func(x, out=out) is out
    assert np.array_equal(out, func(x))
    out32 = np.empty(n, np.float32)
    func(x, out=out32)
    assert np.array_equal(out32, func(x).astype(np.float32))
    tup = np.empty_like(x)
    func(x, out=(tup,))
    assert np.array_equal(tup, out)


def test_out_broadcasts_input():
    out = np.empty((3, 4))
    fastsig.sigmoid(np.zeros(4), out=out)
    assert (out == 0.5).all()


@pytest.mark.parametrize("func", UNARY)
def test_bad_out(func):
    x = np.zeros(4)
    with pytest.raises(ValueError, match="shape"):
        func(x, out=np.empty(5))
    ro = np.empty(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        func(x, out=ro)
    with pytest.raises(TypeError, match="NumPy array"):
        func(x, out=[0.0] * 4)
    with pytest.raises(TypeError, match="dtype int64"):
        func(x, out=np.empty(4, dtype=np.int64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("func", UNARY)
@pytest.mark.parametrize("n", [50, 5000, BIG])
def test_overlapping_out(func, n, dtype, rng):
    """out= one element ahead of x (NumPy copies x first) or behind it
    (NumPy leaves both as they are: a sequential loop is safe there, chunks
    on other threads and a second pass that reads x again are not), with x
    beyond the vector code's first range in many lanes (float32 |x| > 64,
    float64 |x| > 600)."""
    for shift in (1, -1):
        y = (rng.standard_normal(n + 1) * 10).astype(dtype)
        y[rng.random(n + 1) < 0.3] = dtype(-700.0 if dtype == np.float64 else -100.0)
        x, out = (y[:-1], y[1:]) if shift == 1 else (y[1:], y[:-1])
        expected = func(x.copy())
        func(x, out=out)
        assert np.array_equal(out, expected), shift


# ---------------------------------------------------------------- the normal-range pass
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["sigmoid", "sigmoid_derivative", "sigmoid_and_derivative"])
def test_normal_range_pass_equals_full_kernels_bitwise(dtype, name, rng):
    """Contiguous float64 lanes with |x| within _math.NORMAL_RANGE_F64 skip
    the clamp and the subnormal rounding; the scalar functions always run
    the full kernels. Both must give the same bits, at the range's edges
    too, and so must arrays that mix both kinds of x (lanes beyond the
    range go to a second vector pass, NaN stays in the first), serially and
    through the parallel kernel, in place too (float32 runs its own ranges
    on the same arrays)."""
    edge = _math.NORMAL_RANGE_F64
    n = 3 * 1024 + 100
    ranges = [
        rng.uniform(-edge, edge, n),  # every block in the normal range
        (edge - rng.uniform(0, 4, n)) * rng.choice([-1, 1], n),  # near its edges
        rng.uniform(-40, 40, n),
    ]
    mixed = rng.uniform(-edge, edge, n)
    mixed[1500] = -720.0  # one lane of a step beyond the range
    mixed[2100:2300] = rng.choice([-800.0, 750.0, np.inf, -np.inf], 200)  # every lane of some steps
    mixed[2500] = np.nan  # NaN: the normal pass gives NaN
    mixed[3100:3150] = np.nan
    ufunc = _kernels.ufunc(name)
    for x in (*ranges, mixed):
        x = x.astype(dtype)
        expected = scalar_math(name, x)
        got = ufunc(x)
        got = got if isinstance(got, tuple) else (got,)
        assert all(np.array_equal(g, e, equal_nan=True) for g, e in zip(got, expected))
        for where in range(len(got)):  # x as each of the outputs
            in_place = x.copy()
            outs = tuple(in_place if k == where else np.empty_like(x) for k in range(len(got)))
            ufunc(in_place, out=outs)
            assert all(np.array_equal(o, e, equal_nan=True) for o, e in zip(outs, expected))
            in_place = x.copy()  # and through the parallel kernel, which calls the loop itself
            outs = tuple(in_place if k == where else np.empty_like(x) for k in range(len(got)))
            _kernels.run_kernel(name, 2, in_place, *outs)  # two chunks
            assert all(np.array_equal(o, e, equal_nan=True) for o, e in zip(outs, expected))


# Inputs around the edges of the vector code's ranges, by dtype: (the
# edge, values beyond it, the range of ordinary values).
_LANE_EDGES = {
    np.float32: (_math.FAST_RANGE_F32, [-200.0, -104.0, -80.0, 80.0, 104.0, 200.0, np.inf], 70),
    np.float64: (_math.NORMAL_RANGE_F64, [-760.0, -745.0, -720.0, -650.0, 650.0, 720.0, 760.0, np.inf], 750),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["sigmoid", "sigmoid_derivative", "sigmoid_and_derivative"])
def test_vector_code_equals_scalar_math_bitwise(dtype, name, rng):
    """Contiguous arrays run the math of _math as vector code (_lanes): the
    normal (float64) or fast (float32) range, then a second pass for the
    lanes outside it (float64: the full kernels; float32: the saturated
    values σ = 0 or 1, σ' = 0, on steps where every such lane has them, or
    the wide functions in float64 lanes); CUDA runs the scalar functions:
    the same bits for every x, at the range's edge, for every tail length
    and in place (x as either output), where lanes left to the second pass
    must still read their own x."""
    edge, beyond, spread = _LANE_EDGES[dtype]
    edge = dtype(edge)
    step = _kernels._STEPS[name, numba.from_dtype(np.dtype(dtype))]
    x = np.concatenate([
        rng.uniform(-spread, spread, 4 * step),
        np.nextafter(edge, [0, np.inf, 0, np.inf], dtype=dtype) * [1, 1, -1, -1],
        [np.nan, np.inf, -np.inf, 0.0, -0.0, -100.0, 100.0, -90.0, 1e-30, -1e-40, 3e38],
        rng.uniform(-20, 20, 2 * step),
        np.full(step, -np.inf), rng.choice(beyond, 2 * step),
    ]).astype(dtype)
    x = np.concatenate([x, rng.permutation(x)])
    bits = np.int32 if dtype == np.float32 else np.int64
    ufunc = _kernels.ufunc(name)
    for n in [*range(0, 2 * step + 2), x.size]:
        part = x[:n]
        expected = scalar_math(name, part)
        got = ufunc(part)
        got = got if isinstance(got, tuple) else (got,)
        assert all(np.array_equal(g.view(bits), e.view(bits)) for g, e in zip(got, expected)), n
        for where in range(len(got)):  # x as each of the outputs
            in_place = part.copy()
            outs = tuple(in_place if k == where else np.empty_like(part) for k in range(len(got)))
            ufunc(in_place, out=outs)
            assert all(np.array_equal(o.view(bits), e.view(bits)) for o, e in zip(outs, expected)), n


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["sigmoid", "sigmoid_derivative", "sigmoid_and_derivative"])
def test_aligned_steps_give_the_same_bits(dtype, name, rng):
    """From _ALIGN_MIN elements the loops start their steps at the first
    output's first 64-byte boundary, the elements before it in a partial
    step: the scalar functions' bits for every such head length, in place
    (x as each output) and with x and the outputs aligned differently."""
    n = _kernels._ALIGN_MIN + 1000 + 5
    per_line = 64 // np.dtype(dtype).itemsize
    x = rng.uniform(-50, 50, n + 2 * per_line).astype(dtype)
    x[rng.integers(0, x.size, 30)] = _LANE_EDGES[dtype][1][0]  # lanes for the second pass
    x[:per_line] = np.nan
    ufunc = _kernels.ufunc(name)
    nout = 2 if name == "sigmoid_and_derivative" else 1
    bits = np.int32 if dtype == np.float32 else np.int64
    for offset in range(per_line):
        part = x[offset:offset + n]
        expected = scalar_math(name, part)
        outs = tuple(np.empty(n + per_line, dtype)[(offset + 1 + k) % per_line:][:n] for k in range(nout))
        ufunc(part, out=outs)
        assert all(np.array_equal(o.view(bits), e.view(bits)) for o, e in zip(outs, expected)), offset
        for where in range(nout):
            buffer = x.copy()
            in_place = buffer[offset:offset + n]
            outs = tuple(in_place if k == where else np.empty_like(part) for k in range(nout))
            ufunc(in_place, out=outs)
            assert all(np.array_equal(o.view(bits), e.view(bits)) for o, e in zip(outs, expected)), (offset, where)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["sigmoid", "sigmoid_derivative", "sigmoid_and_derivative"])
def test_streaming_stores_give_the_same_bits(dtype, name, rng):
    """From _STREAMING_MIN elements, out-of-place results go out as
    non-temporal stores from the first 64-byte boundary of the outputs on:
    the same bits as the scalar functions, for any alignment of input and
    outputs, lanes outside the vector code's range included, and in the
    parallel kernel, whose chunks decide for themselves."""
    n = _kernels._STREAMING_MIN[numba.from_dtype(np.dtype(dtype))] + 333
    x = rng.uniform(-70, 70, n + 32).astype(dtype)
    x[rng.integers(0, n, 40)] = np.nan
    x[rng.integers(0, n, 40)] = _LANE_EDGES[dtype][1][0]
    ufunc = _kernels.ufunc(name)
    nout = 2 if name == "sigmoid_and_derivative" else 1
    bits = np.int32 if dtype == np.float32 else np.int64
    for x_offset, out_offset in [(0, 0), (3, 0), (0, 5), (7, 7)]:
        part = x[x_offset:x_offset + n]
        expected = scalar_math(name, part)
        outs = tuple(np.empty(n + 16, dtype)[out_offset:out_offset + n] for _ in range(nout))
        ufunc(part, out=outs if nout > 1 else outs[0])
        assert all(np.array_equal(o.view(bits), e.view(bits)) for o, e in zip(outs, expected))
    y = np.concatenate([x, x])
    parallel = getattr(fastsig, name)(y)
    parallel = parallel if isinstance(parallel, tuple) else (parallel,)
    assert all(np.array_equal(p.view(bits), r.view(bits)) for p, r in zip(parallel, scalar_math(name, y)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["sigmoid", "sigmoid_derivative", "sigmoid_and_derivative"])
def test_strided_operands_give_the_contiguous_bits(dtype, name, rng):
    """Strided operands (every other element, reversed, a matrix column, a
    strided out=, in place on a strided view) run the array loops through
    stack blocks, serially and, for 1-D arrays past the threshold, in
    parallel: the bits of the scalar functions."""
    func = getattr(fastsig, name)
    nout = 2 if name == "sigmoid_and_derivative" else 1
    for n in (1000, 3 * _kernels._BLOCK + 7, BIG + 3):
        base = rng.uniform(-120, 120, 3 * n).astype(dtype)
        base[rng.integers(0, 3 * n, 20)] = np.nan
        for x in (base[::3], base[::-2][:n], base.reshape(n, 3)[:, 1]):
            expected = scalar_math(name, np.ascontiguousarray(x))
            got = func(x)
            got = got if isinstance(got, tuple) else (got,)
            assert all(np.array_equal(g, e, equal_nan=True) for g, e in zip(got, expected)), (n, x.strides)
            outs = tuple(np.full(2 * n, 7, dtype)[::2] for _ in range(nout))
            func(x, out=outs if nout > 1 else outs[0])
            assert all(np.array_equal(o, e, equal_nan=True) for o, e in zip(outs, expected)), (n, x.strides)
        in_place = base.copy()[::3]
        expected = scalar_math(name, np.ascontiguousarray(in_place))
        func(in_place, out=(in_place, np.empty_like(in_place)) if nout > 1 else in_place)
        assert np.array_equal(in_place, expected[0], equal_nan=True), n


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matrix_slices_run_in_parallel_with_the_same_bits(dtype, rng):
    """Slices of a matrix (columns, strided rows, transposed, 3-D, reversed)
    run the parallel kernel row by row: the bits of the scalar functions,
    the input's shape, out= and in place included."""
    big = rng.uniform(-120, 120, (600, 800)).astype(dtype)
    big[::37, ::41] = np.nan
    slices = [lambda b: b[:, :500], lambda b: b[::2, ::3], lambda b: b.T[:300],
              lambda b: b.reshape(20, 30, 800)[:, ::2, 100:700], lambda b: b[::-1, ::-2],
              lambda b: b.reshape(20, 30, 800)[:, :10]]  # the last: no 2-D view, the serial ufunc
    for cut in slices:
        x = cut(big)
        for name in ("sigmoid", "sigmoid_derivative", "sigmoid_and_derivative"):
            expected = scalar_math(name, np.ascontiguousarray(x).reshape(-1))
            got = getattr(fastsig, name)(x)
            got = got if isinstance(got, tuple) else (got,)
            assert all(g.shape == x.shape for g in got)
            assert all(np.array_equal(g.reshape(-1), e, equal_nan=True) for g, e in zip(got, expected)), name
        outs = cut(np.empty_like(big))
        fastsig.sigmoid_derivative(x, out=outs)
        assert np.array_equal(outs.reshape(-1), scalar_math("sigmoid_derivative", np.ascontiguousarray(x).reshape(-1))[0], equal_nan=True)
        work = big.copy()
        view = cut(work)
        expected = scalar_math("sigmoid", np.ascontiguousarray(view).reshape(-1))[0]
        fastsig.sigmoid_(view)
        assert np.array_equal(np.ascontiguousarray(view).reshape(-1), expected, equal_nan=True)
        outside = np.ones(big.shape, bool)
        cut(outside)[...] = False
        assert np.array_equal(work[outside], big[outside], equal_nan=True)  # the rest untouched
        grad = cut(rng.standard_normal(big.shape).astype(dtype))
        expected = fastsig.sigmoid_backward(np.ascontiguousarray(grad), np.ascontiguousarray(x))
        assert np.array_equal(fastsig.sigmoid_backward(grad, x), expected, equal_nan=True)
    if fastsig.get_num_threads() > 1:  # these sizes are past the parallel threshold
        assert any(kernel.signatures for kernel in _kernels.PARALLEL_ROWS.values())


@pytest.mark.parametrize("dtype", ["<f8", "<f4"])
def test_unaligned_fields_of_packed_records(dtype):
    """A field of a packed record array is strided by a number of bytes that
    is not a whole number of elements: it goes through NumPy's buffering,
    not the kernels' strides, and gives the contiguous results."""
    records = np.zeros(BIG, dtype=np.dtype([("flag", "u1"), ("x", dtype)]))
    records["x"] = np.linspace(-30, 30, BIG)
    field = records["x"]
    assert not field.flags.aligned
    expected = fastsig.sigmoid(np.ascontiguousarray(field))
    assert np.array_equal(fastsig.sigmoid(field), expected)
    assert np.array_equal(fastsig.sigmoid_and_derivative(field)[0], expected)
    fastsig.sigmoid_(field)
    assert np.array_equal(records["x"], expected)


def test_results_are_laid_out_as_numpys():
    """Past the parallel threshold too, a result has the memory order a NumPy
    ufunc would give it: C for broadcast input, Fortran for a transposed
    slice, C for a column block."""
    matrix = np.linspace(-5, 5, 4_000_000).reshape(2000, 2000)
    inputs = [np.broadcast_to(matrix[0], (1000, 2000)), matrix.T[:1000], matrix[:, :1000], matrix[::2]]
    for x in inputs:
        got, reference = fastsig.sigmoid(x), np.exp(x)
        assert (got.flags.c_contiguous, got.flags.f_contiguous) == (reference.flags.c_contiguous, reference.flags.f_contiguous)
        assert np.array_equal(got, fastsig.sigmoid(np.ascontiguousarray(x)))


def test_float16_rounding_gives_numpys_bits(rng):
    """float16 results are rounded from float64 by fastsig's own code (NumPy's
    astype takes ~65 ns per subnormal float16): the bits of astype(float16)
    for every float16 value, the midpoints between them and their
    neighbours, overflow, subnormals, NaN payloads and random doubles."""
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    finite = np.unique(halves[np.isfinite(halves)].astype(np.float64))
    midpoints = (finite[:-1] + finite[1:]) / 2
    values = np.concatenate([
        finite, midpoints, np.nextafter(midpoints, np.inf), np.nextafter(midpoints, -np.inf),
        [np.inf, -np.inf, np.nan, 65504.0, 65519.99, 65520.0, 1e300, 2.0**-25, 2.0**-24, 5e-324, -0.0],
        rng.integers(0, 2**63, 20000).view(np.float64), np.exp(rng.uniform(-40, 12, 20000)),
    ])
    with np.errstate(all="ignore"):
        expected = values.astype(np.float16)
    got = _kernels.to_float16(values)
    assert np.array_equal(got.view(np.uint16), expected.view(np.uint16))
    strided = _kernels.to_float16(values[: values.size // 2 * 2].reshape(2, -1)[:, ::3])
    assert np.array_equal(strided.view(np.uint16), expected[: values.size // 2 * 2].reshape(2, -1)[:, ::3].view(np.uint16))


# ---------------------------------------------------------------- the parallel path
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_parallel_equals_serial_bitwise(dtype, rng):
    x = (rng.standard_normal(BIG) * 30).astype(dtype)
    x[:5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    for name in ("sigmoid", "sigmoid_derivative"):
        serial = _kernels.ufunc(name)(x)
        assert np.array_equal(getattr(fastsig, name)(x), serial, equal_nan=True)
        fortran = np.asfortranarray(x.reshape(-1, 8))
        assert np.array_equal(getattr(fastsig, name)(fortran), serial.reshape(-1, 8), equal_nan=True)
    with fastsig.num_threads(1):
        assert np.array_equal(fastsig.sigmoid(x), _kernels.ufunc("sigmoid")(x), equal_nan=True)


def test_threads_settings():
    assert fastsig.get_num_threads() >= 1
    with fastsig.num_threads(1):
        assert fastsig.get_num_threads() == 1
    fastsig.set_num_threads(1)
    try:
        assert fastsig.get_num_threads() == 1
    finally:
        fastsig.set_num_threads(None)
    with pytest.raises(ValueError):
        fastsig.set_num_threads(0)


def test_concurrent_calls_from_many_threads(rng):
    xs = [(rng.standard_normal(BIG) * 10).astype(np.float64) for _ in range(6)]
    expected = [_kernels.ufunc("sigmoid")(x) for x in xs]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        for _ in range(3):
            results = list(pool.map(fastsig.sigmoid, xs))
            assert all(np.array_equal(r, e) for r, e in zip(results, expected))


# ---------------------------------------------------------------- two outputs, backward
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("n", [9, BIG])
def test_sigmoid_and_derivative_bitwise(dtype, n, rng):
    x = (rng.standard_normal(n) * 40).astype(dtype)
    x[:4] = [np.nan, np.inf, -np.inf, 0]
    s, ds = both(x)
    assert np.array_equal(s, fastsig.sigmoid(x), equal_nan=True)
    assert np.array_equal(ds, fastsig.sigmoid_derivative(x), equal_nan=True)
    a, b = np.empty_like(x), np.empty_like(x)
    ra, rb = both(x, out=(a, b))
    assert ra is a and rb is b and np.array_equal(a, s, equal_nan=True) and np.array_equal(b, ds, equal_nan=True)
    y = x.copy()
    other = np.empty_like(x)
    both(y, out=(y, other))  # in place for σ
    assert np.array_equal(y, s, equal_nan=True) and np.array_equal(other, ds, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_and_derivative_small_layouts(dtype, rng):
    """Below the parallel size the pair comes from the one-output ufunc that
    writes σ' into a fresh array (see _kernels): the same bits and the same
    results as NumPy's two-output ufunc would give, in every layout."""
    base = (rng.standard_normal(4000) * 40).astype(dtype)
    base[:5] = [np.nan, np.inf, -np.inf, 0, -800]
    cases = [base[:n] for n in (0, 1, 2, 15, 16, 17, 127, 129, 1000, 4000)]
    cases += [base[::3], base[:1200].reshape(30, 40), base[:1200].reshape(30, 40).T, base[:1200].reshape(2, 3, 200)[:, ::2]]
    for x in cases:
        s, ds = both(x)
        reference = _kernels.ufunc("sigmoid_and_derivative")(x)
        for result, expected in zip((s, ds), reference):
            assert type(result) is np.ndarray and result.dtype == x.dtype and result.shape == x.shape
            assert result.flags.owndata and result.flags.writeable
            assert np.array_equal(result, expected, equal_nan=True)
        assert np.array_equal(s, fastsig.sigmoid(x), equal_nan=True)
        assert np.array_equal(ds, fastsig.sigmoid_derivative(x), equal_nan=True)
        assert ds.flags.c_contiguous == s.flags.c_contiguous and ds.flags.f_contiguous == s.flags.f_contiguous
    s, ds = both(np.array(-3.0, dtype))  # 0-d: NumPy scalars, as NumPy's ufuncs give
    assert type(s) is type(ds) is np.dtype(dtype).type
    assert (s, ds) == (fastsig.sigmoid(dtype(-3.0)), fastsig.sigmoid_derivative(dtype(-3.0)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 9, 1000])
def test_sigmoid_and_derivative_small_out(dtype, n, rng):
    """out=(s, ds) for small arrays, where ds can go to the one-output ufunc
    as an input: in place either way, views, errors."""
    x = (rng.standard_normal(n) * 40).astype(dtype)
    s_expected, ds_expected = fastsig.sigmoid(x), fastsig.sigmoid_derivative(x)
    for s_in_x, ds_in_x in ((False, False), (True, False), (False, True)):
        y = x.copy()
        s_out = y if s_in_x else np.empty_like(x)
        ds_out = y if ds_in_x else np.empty_like(x)
        result = both(y, out=(s_out, ds_out))
        assert result[0] is s_out and result[1] is ds_out
        assert np.array_equal(s_out, s_expected) and np.array_equal(ds_out, ds_expected)
    # views (not owning their data), also overlapping x: the general path
    y = np.concatenate([x, x, x])
    s_view, ds_view = np.empty(3 * n, dtype)[::3], y[n + 1:2 * n + 1]
    x_view = y[:n]
    both(x_view, out=(s_view, ds_view))
    assert np.array_equal(s_view, s_expected) and np.array_equal(ds_view, ds_expected)
    ro = np.empty_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        both(x, out=(np.empty_like(x), ro))
    with pytest.raises(ValueError, match="read-only"):
        both(x, out=(ro, np.empty_like(x)))
    if n > 1:  # (n + 1,) does not broadcast from (n,)
        with pytest.raises(ValueError, match="shape"):
            both(x, out=(np.empty_like(x), np.empty(n + 1, dtype)))
        with pytest.raises(ValueError, match="shape"):
            both(x, out=(np.empty(n + 1, dtype), np.empty_like(x)))


def test_sigmoid_and_derivative_bad_out():
    x = np.zeros(3)
    with pytest.raises(TypeError, match="tuple of 2"):
        both(x, out=np.empty(3))
    with pytest.raises(ValueError, match="overlap"):
        o = np.empty(3)
        both(x, out=(o, o))


@pytest.mark.parametrize("n", [5, BIG])
def test_sigmoid_backward(n, rng):
    g = rng.standard_normal(n)
    y = fastsig.sigmoid(rng.standard_normal(n))
    assert np.array_equal(fastsig.sigmoid_backward(g, y), g * (y * (1 - y)))
    g2 = rng.standard_normal((3, 1))
    y2 = fastsig.sigmoid(rng.standard_normal(4))
    assert np.array_equal(fastsig.sigmoid_backward(g2, y2), g2 * (y2 * (1 - y2)))
    out = np.empty((3, 4), np.float32)
    fastsig.sigmoid_backward(g2.astype(np.float32), y2.astype(np.float32), out=out)
    assert np.allclose(out, g2 * (y2 * (1 - y2)), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(BIG,), (400, 500), (500, 400)])
def test_sigmoid_backward_parallel_layouts(dtype, shape, rng):
    """Large arrays take the parallel kernel (C order) or the ufunc (Fortran
    order, mixed dtypes): the same values either way."""
    assert _kernels.parallel_threads("sigmoid_backward", int(np.prod(shape)), np.dtype(dtype)) == fastsig.get_num_threads()
    g = rng.standard_normal(shape).astype(dtype)
    y = fastsig.sigmoid(rng.standard_normal(shape).astype(dtype))
    expected = g * (y * (dtype(1) - y))
    for args in ((g, y), (np.asfortranarray(g), np.asfortranarray(y)), (g, np.asfortranarray(y))):
        result = fastsig.sigmoid_backward(*args)
        assert result.dtype == dtype and result.shape == shape
        assert np.array_equal(result, expected)
    mixed = fastsig.sigmoid_backward(g.astype(np.float64), y)
    assert mixed.dtype == np.float64


# ---------------------------------------------------------------- in place
@pytest.mark.parametrize("inplace, func", [(fastsig.sigmoid_, fastsig.sigmoid), (fastsig.sigmoid_derivative_, fastsig.sigmoid_derivative)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("n", [1, 20, BIG])
def test_in_place(inplace, func, dtype, n, rng):
    x = (rng.standard_normal(n) * 10).astype(dtype)
    expected = func(x)
    y = x.copy()
    assert inplace(y) is y
    assert np.array_equal(y, expected)
    z = x.copy()
    view = z[::3]
    inplace(view)
    assert np.array_equal(z[::3], expected[::3])
    untouched = np.ones(n, bool)
    untouched[::3] = False
    assert np.array_equal(z[untouched], x[untouched])
    w = x.copy()
    func(w, out=w)
    assert np.array_equal(w, expected)
    single = x[:1].copy().reshape(())  # 0-d: one element, as the 1-element arrays
    assert inplace(single) is single and single == expected[0]


@pytest.mark.parametrize("inplace", [fastsig.sigmoid_, fastsig.sigmoid_derivative_])
def test_in_place_refuses(inplace):
    ints = np.arange(5)
    with pytest.raises(TypeError, match="int64"):
        inplace(ints)
    assert np.array_equal(ints, np.arange(5))
    with pytest.raises(TypeError, match="list"):
        inplace([1.0, 2.0])
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        inplace(ro)
    assert (ro == 1).all()


# ---------------------------------------------------------------- no floating-point warnings
EXTREMES = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-320, -1e-320, 700, -700, 708.5, -708.5, 745, -745, -745.2, 746, -746, 1e308, -1e308, 88, -88, 104, -104])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_no_floating_point_warnings(dtype):
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        x = EXTREMES[(np.abs(EXTREMES) < np.finfo(dtype).max) | ~np.isfinite(EXTREMES)]
        with np.errstate(all="ignore"):
            x = x.astype(dtype)  # 1e-320 underflows to 0 in float32
        big = np.resize(x, BIG)
        for arr in (x, big):
            fastsig.sigmoid(arr)
            fastsig.sigmoid_derivative(arr)
            both(arr)
            fastsig.sigmoid_backward(arr, arr)  # inf * 0, underflow: still silent
            fastsig.sigmoid_(arr.copy())


# ---------------------------------------------------------------- duck arrays
def test_dask_array_stays_lazy():
    da = pytest.importorskip("dask.array")
    x = da.linspace(-50, 50, 1001, chunks=100)
    for name in ("sigmoid", "sigmoid_derivative"):
        r = getattr(fastsig, name)(x)
        assert isinstance(r, da.Array)
        assert np.array_equal(r.compute(), getattr(fastsig, name)(x.compute()))
    s, ds = both(x)
    assert isinstance(s, da.Array) and isinstance(ds, da.Array)
    r = fastsig.sigmoid_backward(x, x)
    assert isinstance(r, da.Array)


def test_xarray_dataarray_is_kept():
    xr = pytest.importorskip("xarray")
    x = xr.DataArray(np.linspace(-5, 5, 11), dims="t", coords={"t": np.arange(11)}, name="z")
    r = fastsig.sigmoid(x)
    assert isinstance(r, xr.DataArray) and r.dims == ("t",)
    assert np.array_equal(r.values, fastsig.sigmoid(x.values))


# ---------------------------------------------------------------- the reciprocal
# Inputs whose result depends on the reciprocal (_math.reciprocal): the
# division's bits, then vrcp14 and a Newton step's (1 ulp less). float32: two
# of the 198 such inputs among the 2**32 (both within 0.501 ulp); float64:
# two of the 0.15-1.2 % (0.499 against 0.501 ulp, 0.487 against 0.513).
_RECIPROCAL_CASES = {
    ("sigmoid", "float32"): (0x34000001, 0x3F000001, 0x3F000000),
    ("sigmoid_derivative", "float32"): (0x3BCB5537, 0x3E7FFF5F, 0x3E7FFF5E),
    ("sigmoid", "float64"): (0x4020820C49BA5E35, 0x3FEFFDDE6E26B412, 0x3FEFFDDE6E26B411),
    ("sigmoid_derivative", "float64"): (0xC009BA5E353F7CEE, 0x3FA2FC387D5FF57C, 0x3FA2FC387D5FF57B),
}
_BITS = {"float32": np.uint32, "float64": np.uint64}


@pytest.mark.parametrize("name, dtype", sorted(_RECIPROCAL_CASES))
def test_reciprocal_follows_the_cpu(name, dtype):
    bits, divided, estimated = _RECIPROCAL_CASES[name, dtype]
    x = np.array([bits], _BITS[dtype]).view(dtype)
    expected = estimated if _math.cpu_has_avx512() else divided
    assert getattr(fastsig, name)(x).view(_BITS[dtype])[0] == expected
    assert scalar_math(name, x)[0].view(_BITS[dtype])[0] == expected


@pytest.mark.parametrize("without", [("avx512",), ("avx512", "avx2")], ids=["avx2", "no-avx2"])
def test_kernels_divide_without_avx512(tmp_path, without):
    """Compiled for a CPU without AVX-512 (NUMBA_CPU_FEATURES), the kernels
    divide, and the vector and scalar code still give the same bits: with
    AVX2's permutes for the table lookups, and without AVX2 (extracts)."""
    from numba.core import codegen

    features = codegen.get_host_cpu_features()
    for feature in without:
        features = features.replace(f"+{feature}", f"-{feature}")
    code = textwrap.dedent(f"""
        import numpy as np, fastsig, fastsig._math as m
        from scalar_reference import scalar_math
        assert not m.cpu_has_avx512() and m.cpu_has_avx2() == {"avx2" not in without}
        cases = {_RECIPROCAL_CASES!r}
        rng = np.random.default_rng(0)
        for dtype, bits in (("float32", np.uint32), ("float64", np.uint64)):
            mine = {{name: c for (name, d), c in cases.items() if d == dtype}}
            x = np.concatenate([np.array([c[0] for c in mine.values()], bits).view(dtype),
                                rng.integers(0, 2**64, 50_000, dtype=np.uint64).astype(bits).view(dtype),
                                rng.uniform(-40, 40, 50_000).astype(dtype)])
            x = x[~np.isnan(x)]
            for i, (name, (_, divided, _)) in enumerate(mine.items()):
                got = getattr(fastsig, name)(x).view(bits)
                ref = scalar_math(name, x)[0].view(bits)
                assert got[i] == divided and np.array_equal(got, ref), (name, dtype)
        print("ok")
    """)
    env = {**os.environ, "NUMBA_CPU_FEATURES": features, "FASTSIG_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_avx2_table_lookups_are_permutes():
    """Compiled for AVX2 without AVX-512, the table lookups of the array
    loops are permutes (vpermps / vpermd) on 256-bit registers, not 16
    extracts and inserts per vector (3.5x slower, Zen 3), whatever LLVM
    makes of the rest."""
    from numba.core import codegen

    features = codegen.get_host_cpu_features()
    if "+avx2" not in features.split(","):
        pytest.skip("the host has no AVX2")
    code = textwrap.dedent("""
        from numba import types
        from fastsig import _kernels as k
        for element_type in (types.float32, types.float64):
            for name in ("sigmoid", "sigmoid_and_derivative"):
                spec = k._UFUNC_SPECS[name]
                loop = k._compile_loop(k._specialize(spec.array_loop, name, element_type),
                                       k._array_loop_signature(element_type, spec.nout))
                asm = loop._library.get_asm_str()
                assert "vpermps" in asm or "vpermd" in asm, (name, element_type)
                assert not any(op in asm for op in ("vpextrd", "vpextrq", "vinsertps", "zmm")), (name, element_type)
        print("ok")
    """)
    env = {**os.environ, "NUMBA_CPU_FEATURES": features.replace("+avx512", "-avx512"), "FASTSIG_DISABLE_CACHE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# ---------------------------------------------------------------- import cost
def test_import_compiles_nothing():
    code = (
        "import fastsig, fastsig._kernels as k;"
        "assert k.ufunc.cache_info().currsize == 0;"
        "assert all(not d.signatures for d in (*k.PARALLEL.values(), *k.PARALLEL_ROWS.values()));"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


# ---------------------------------------------------------------- random layouts
def _random_values(rng, n, dtype):
    values = rng.uniform(-30, 30, n)
    kind = rng.integers(0, 4)
    if kind == 1:
        values[rng.random(n) < 0.02] = np.nan
    elif kind == 2:
        values[rng.random(n) < 0.02] = rng.choice([np.inf, -np.inf, 800.0, -750.0, 100.0, -95.0])
    elif kind == 3:
        values = rng.uniform(-800, 800, n)
    return values.astype(dtype)


def _random_array(rng, shape, dtype, layout):
    if layout == "strided":  # every other element of each axis, some reversed
        big = _random_values(rng, 2**len(shape) * math.prod(shape), dtype).reshape(tuple(2 * s for s in shape))
        return big[tuple(slice(None, None, int(rng.choice([2, -2]))) for _ in shape)]
    values = _random_values(rng, math.prod(shape), dtype).reshape(shape)
    return np.asfortranarray(values) if layout == "fortran" else values


def test_random_layouts_match_the_scalar_functions():
    """Random operations, dtypes, sizes (both sides of the parallel
    thresholds), shapes, layouts and out= arrangements, x in place as either
    output included: the bits of the scalar functions on a contiguous copy."""
    rng = np.random.default_rng(2026)
    for _ in range(80):
        dtype = rng.choice([np.float32, np.float64])
        size = int(rng.choice([1, 63, 1000, 6144, 16500, 70000, 250000]))
        shape = [(size,), (max(1, size // 97), 97), (max(1, size // 300), 10, 30)][rng.integers(0, 3)]
        x = _random_array(rng, shape, dtype, rng.choice(["c", "fortran", "strided"]))
        name = str(rng.choice(["sigmoid", "sigmoid_derivative", "sigmoid_and_derivative"]))
        expected = tuple(r.reshape(shape) for r in scalar_math(name, np.ascontiguousarray(x).reshape(-1)))
        nout = len(expected)
        mode = rng.choice(["allocate", "out", "in place"])
        if mode == "allocate":
            outs = getattr(fastsig, name)(x)
            outs = outs if isinstance(outs, tuple) else (outs,)
        else:
            outs = tuple(_random_array(rng, shape, dtype, rng.choice(["c", "fortran", "strided"])) for _ in range(nout))
            if mode == "in place":
                outs[-1][...] = x
                x = outs[-1]  # the last output: the only one for σ, σ' for the fused kernel
            getattr(fastsig, name)(x, out=outs if nout > 1 else outs[0])
        assert all(o.shape == e.shape and np.array_equal(o, e, equal_nan=True) for o, e in zip(outs, expected)), (name, dtype, shape, mode)
