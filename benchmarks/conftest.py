"""pytest-benchmark suite: fastsig against the NumPy baseline and its peers.

Not part of the default test run (``testpaths = ["tests"]``). Run it with::

    pytest benchmarks/                                   # every size, 1e1 ... 1e8 (tens of minutes)
    pytest benchmarks/ --fastsig-max-size=1e5            # sizes up to 1e5
    pytest benchmarks/ --benchmark-disable --fastsig-max-size=1e5   # CI smoke run: each case once

``FASTSIG_BENCH_MAX_SIZE=1e5`` in the environment does what the option does.
The parameters are strings (op, dtype, size such as "1e3", impl), so the
JSON of ``--benchmark-save`` / ``--benchmark-autosave`` compares across runs
(``pytest-benchmark compare``).
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fastsig-max-size",
        default=os.environ.get("FASTSIG_BENCH_MAX_SIZE", "1e8"),
        help="largest array size to benchmark, such as 1e5 (default: $FASTSIG_BENCH_MAX_SIZE or 1e8)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the cases whose size is above --fastsig-max-size."""
    limit = float(config.getoption("--fastsig-max-size"))
    keep, drop = [], []
    for item in items:
        size = getattr(item, "callspec", None) and item.callspec.params.get("size")
        (drop if size is not None and float(size) > limit else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
