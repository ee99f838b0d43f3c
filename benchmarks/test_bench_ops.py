"""One benchmark per operation × dtype × size × implementation, from the
table in :mod:`fastsig.comparisons`; each (operation, dtype, size) is a
group, so pytest-benchmark prints fastsig, the baseline, the installed
peers and the memory copy side by side.

In-place operations are timed on one work array that starts as a copy of
the input: the first call sees the input, later calls values already in
range (σ stays in (0, 1), σ' in (0, 0.25]), which takes the kernels and
NumPy the same time per element.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from fastsig.comparisons import COMPARISONS, DTYPES, OPERATIONS, PEERS, memory_copy

SIZES = tuple(f"1e{k}" for k in range(1, 9))  # strings: stable ids, comparable saved JSON
IMPLS = ("fastsig", "baseline", *PEERS, "copy")


@functools.lru_cache(maxsize=1)  # cases of one (op, dtype, size) run one after another
def _inputs(op: str, dtype: str, size: str) -> tuple[np.ndarray, ...]:
    return COMPARISONS[op].inputs(int(float(size)), dtype)


@pytest.fixture(autouse=True)
def _quiet():
    with np.errstate(all="ignore"):  # float16 baselines overflow in exp, as they should
        yield


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPERATIONS)
def test_op(benchmark, op: str, dtype: str, size: str, impl: str) -> None:
    c = COMPARISONS[op]
    inputs = _inputs(op, dtype, size)
    benchmark.group = f"{op} {dtype} {size}"
    benchmark.extra_info.update(op=op, dtype=dtype, size=int(float(size)), impl=impl)
    if impl == "copy":
        func, args = memory_copy, (inputs[0], np.empty_like(inputs[0]))
    else:
        func = c.implementation(impl)
        if func is None:
            pytest.skip(f"{impl} is not installed or has no {op}")
        args = (inputs[0].copy(), *inputs[1:]) if c.in_place else inputs
    func(*args)  # warm-up outside the timings: compiles fastsig's kernels, loads the peer
    result = benchmark(func, *args)
    if impl != "copy":
        results = result if isinstance(result, tuple) else (result,)
        assert len(results) == len(c.outputs)
        assert all(np.shape(r) == inputs[0].shape for r in results)
