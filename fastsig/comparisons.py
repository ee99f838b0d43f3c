"""The one table of comparisons behind the tests, the benchmarks and ``fastsig bench``.

For each operation it holds the fastsig callable, the textbook NumPy
baseline, the peers (SciPy, numexpr, PyTorch) and how to make inputs for it.
``benchmarks/``, :mod:`fastsig.bench` and the tests all read this table, so
a new operation or peer is added here once.

Every callable in the table takes the input arrays positionally and returns
the result (an array, or a tuple of two for ``sigmoid_and_derivative``).
The in-place operations overwrite their first input and return it; use
:meth:`Comparison.call` to run one on copies.

Importing this module imports NumPy and fastsig only: each peer is imported
the first time :func:`peer` asks for it, and is None when not installed.

>>> import numpy as np
>>> from fastsig.comparisons import COMPARISONS
>>> c = COMPARISONS["sigmoid_derivative"]
>>> x = c.inputs(1000, "float64")
>>> bool(np.allclose(c.call("fastsig", x), c.call("baseline", x)))
True
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from . import _api, baseline

#: The peers, in the order tables list them.
PEERS = ("scipy", "numexpr", "torch")
#: Inputs are drawn uniformly from this range (grad_output from [-1, 1]):
#: wide enough to reach the tails where the textbook derivative loses its
#: digits (and float32 σ rounds to 1), narrow enough that the textbook
#: exp(-x) never overflows, so no implementation warns.
X_RANGE = (-20.0, 20.0)
#: The dtypes every implementation in the table accepts; float16 is
#: accepted by fastsig and the baseline, and by some peers.
DTYPES = ("float32", "float64")
ALL_DTYPES = ("float16", "float32", "float64")


def all_cores() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


# --------------------------------------------------------------------------
# Lazy peer modules: each loader returns the module, or None if not installed.
# --------------------------------------------------------------------------
@functools.cache
def _scipy_special():
    try:
        import scipy.special
    except ImportError:
        return None
    return scipy.special


@functools.cache
def _numexpr():
    try:
        import numexpr
    except ImportError:
        return None
    return numexpr  # its default thread count is already all cores


@functools.cache
def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(all_cores())  # as many threads as fastsig's kernels use
    return torch


_MODULES: dict[str, Callable] = {"scipy": _scipy_special, "numexpr": _numexpr, "torch": _torch}


def installed_peers() -> tuple[str, ...]:
    """The peers that can be imported here (importing them)."""
    return tuple(name for name in PEERS if _MODULES[name]() is not None)


# --------------------------------------------------------------------------
# The baselines: the textbook formulas of fastsig.baseline; the in-place
# ones write into the same array with out=.
# --------------------------------------------------------------------------
def _baseline_sigmoid_(x: np.ndarray) -> np.ndarray:
    np.negative(x, out=x)
    np.exp(x, out=x)
    np.add(x, 1, out=x)
    np.divide(1, x, out=x)
    return x


def _baseline_sigmoid_derivative_(x: np.ndarray) -> np.ndarray:
    _baseline_sigmoid_(x)
    np.multiply(x, 1 - x, out=x)
    return x


# --------------------------------------------------------------------------
# The peers, one factory per (peer, operation): given the module, the callable.
# --------------------------------------------------------------------------
_NE_SIGMOID = "1/(1+exp(-x))"  # integer constants: float32 stays float32 in numexpr
_NE_DERIVATIVE = "s*(1-s)"


def _scipy_ops(sp) -> dict[str, Callable]:
    expit = sp.expit

    def derivative(x):
        s = expit(x)
        return s * (1 - s)

    def both(x):
        s = expit(x)
        return s, s * (1 - s)

    def sigmoid_(x):
        return expit(x, out=x)

    def derivative_(x):
        expit(x, out=x)
        np.multiply(x, 1 - x, out=x)
        return x

    return {
        "sigmoid": expit,
        "sigmoid_derivative": derivative,
        "sigmoid_and_derivative": both,
        "sigmoid_": sigmoid_,
        "sigmoid_derivative_": derivative_,
    }


def _numexpr_ops(ne) -> dict[str, Callable]:
    evaluate = ne.evaluate

    def sigmoid(x):
        return evaluate(_NE_SIGMOID, local_dict={"x": x})

    def derivative(x):
        s = evaluate(_NE_SIGMOID, local_dict={"x": x})
        return evaluate(_NE_DERIVATIVE, local_dict={"s": s})

    def both(x):
        s = evaluate(_NE_SIGMOID, local_dict={"x": x})
        return s, evaluate(_NE_DERIVATIVE, local_dict={"s": s})

    def backward(g, y):
        return evaluate("g*y*(1-y)", local_dict={"g": g, "y": y})

    def sigmoid_(x):
        return evaluate(_NE_SIGMOID, local_dict={"x": x}, out=x)

    def derivative_(x):
        evaluate(_NE_SIGMOID, local_dict={"x": x}, out=x)
        return evaluate(_NE_DERIVATIVE, local_dict={"s": x}, out=x)

    return {
        "sigmoid": sigmoid,
        "sigmoid_derivative": derivative,
        "sigmoid_and_derivative": both,
        "sigmoid_backward": backward,
        "sigmoid_": sigmoid_,
        "sigmoid_derivative_": derivative_,
    }


def _torch_ops(torch) -> dict[str, Callable]:
    from_numpy = torch.from_numpy

    def sigmoid(x):
        return torch.sigmoid(from_numpy(x)).numpy()

    def derivative(x):
        s = torch.sigmoid(from_numpy(x))
        return s.mul_(torch.rsub(s, 1)).numpy()

    def both(x):
        s = torch.sigmoid(from_numpy(x))
        return s.numpy(), torch.mul(s, torch.rsub(s, 1)).numpy()

    def backward(g, y):
        return torch.ops.aten.sigmoid_backward(from_numpy(g), from_numpy(y)).numpy()

    def sigmoid_(x):
        from_numpy(x).sigmoid_()
        return x

    def derivative_(x):
        t = from_numpy(x).sigmoid_()
        t.mul_(torch.rsub(t, 1))
        return x

    return {
        "sigmoid": sigmoid,
        "sigmoid_derivative": derivative,
        "sigmoid_and_derivative": both,
        "sigmoid_backward": backward,
        "sigmoid_": sigmoid_,
        "sigmoid_derivative_": derivative_,
    }


_PEER_OPS: dict[str, Callable] = {"scipy": _scipy_ops, "numexpr": _numexpr_ops, "torch": _torch_ops}


@functools.cache
def _peer_table(name: str) -> Mapping[str, Callable] | None:
    module = _MODULES[name]()
    return None if module is None else _PEER_OPS[name](module)


def peer(name: str, op: str) -> Callable | None:
    """Peer ``name``'s callable for operation ``op``; None when the peer is
    not installed or has no such operation (SciPy has no sigmoid_backward)."""
    if name not in _MODULES:
        raise ValueError(f"unknown peer {name!r}; the peers are {', '.join(PEERS)}")
    table = _peer_table(name)
    return None if table is None else table.get(op)


# --------------------------------------------------------------------------
# The memory-copy reference: the speed limit of a one-in, one-out operation.
# --------------------------------------------------------------------------
def memory_copy(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """np.copyto(out, x): reads and writes the bytes any element-wise map must."""
    np.copyto(out, x)
    return out


# --------------------------------------------------------------------------
# The table.
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """One operation and every implementation of it that we compare."""

    #: The operation's name, as in ``fastsig.<name>``.
    name: str
    #: fastsig's implementation.
    fastsig: Callable
    #: The textbook NumPy implementation.
    baseline: Callable
    #: Number of input arrays (sigmoid_backward: grad_output, output).
    nin: int = 1
    #: What each result is, in order: "sigmoid", "sigmoid_derivative" or
    #: "sigmoid_backward" (to pick a reference for accuracy).
    outputs: tuple[str, ...] = ("sigmoid",)
    #: True when the callables overwrite their first input.
    in_place: bool = False
    #: One line for tables and plots.
    description: str = field(default="", compare=False)

    def implementations(self) -> tuple[str, ...]:
        """"fastsig", "baseline", then each installed peer that has this operation."""
        return ("fastsig", "baseline") + tuple(p for p in PEERS if peer(p, self.name) is not None)

    def implementation(self, impl: str) -> Callable | None:
        """The callable named ``impl`` ("fastsig", "baseline" or a peer), or None if unavailable."""
        if impl == "fastsig":
            return self.fastsig
        if impl == "baseline":
            return self.baseline
        return peer(impl, self.name)

    def inputs(self, size: int, dtype: str | np.dtype, seed: int = 0) -> tuple[np.ndarray, ...]:
        """Fresh, contiguous inputs of ``size`` elements: x uniform in
        :data:`X_RANGE`; for sigmoid_backward, grad_output uniform in
        [-1, 1] and output = σ(x) (rounded once from float64)."""
        dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        x = rng.uniform(*X_RANGE, size)
        if self.nin == 1:
            return (x.astype(dtype),)
        grad_output = rng.uniform(-1.0, 1.0, size).astype(dtype)
        output = np.empty(size)
        np.divide(1.0, 1.0 + np.exp(-x), out=output)
        return grad_output, output.astype(dtype)

    def call(self, impl: str, inputs: tuple[np.ndarray, ...]):
        """Run implementation ``impl`` on ``inputs``, on copies for an in-place
        operation (so ``inputs`` are left as they were)."""
        func = self.implementation(impl)
        if func is None:
            raise LookupError(f"{impl} is not installed or has no {self.name}")
        if self.in_place:
            inputs = tuple(a.copy() for a in inputs)
        return func(*inputs)


COMPARISONS: dict[str, Comparison] = {
    c.name: c
    for c in (
        Comparison(
            "sigmoid", _api.sigmoid, baseline.sigmoid,
            description="σ(x), a new array",
        ),
        Comparison(
            "sigmoid_derivative", _api.sigmoid_derivative, baseline.sigmoid_derivative,
            outputs=("sigmoid_derivative",),
            description="σ'(x), a new array (baseline: s, then s·(1-s))",
        ),
        Comparison(
            "sigmoid_and_derivative", _api.sigmoid_and_derivative, baseline.sigmoid_and_derivative,
            outputs=("sigmoid", "sigmoid_derivative"),
            description="(σ(x), σ'(x)), two new arrays",
        ),
        Comparison(
            "sigmoid_backward", _api.sigmoid_backward, baseline.sigmoid_backward,
            nin=2, outputs=("sigmoid_backward",),
            description="grad_output·y·(1-y), a new array",
        ),
        Comparison(
            "sigmoid_", _api.sigmoid_, _baseline_sigmoid_,
            in_place=True,
            description="σ(x) written over x",
        ),
        Comparison(
            "sigmoid_derivative_", _api.sigmoid_derivative_, _baseline_sigmoid_derivative_,
            outputs=("sigmoid_derivative",), in_place=True,
            description="σ'(x) written over x",
        ),
    )
}

#: The operations, in table order.
OPERATIONS = tuple(COMPARISONS)
