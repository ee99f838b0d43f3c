"""The plain reference for the CPU kernels' bits: the scalar functions of
_math (what CUDA runs) element by element, compiled here, outside
fastsig's kernels (whose every CPU path, strided ones included, runs the
array loops).
"""

import numpy as np
from numba import njit

from fastsig import _math

_SCALAR_FUNCTIONS = {
    ("sigmoid", np.float64): _math.sigmoid_f64,
    ("sigmoid", np.float32): _math.sigmoid_f32,
    ("sigmoid_derivative", np.float64): _math.sigmoid_derivative_f64,
    ("sigmoid_derivative", np.float32): _math.sigmoid_derivative_f32,
    ("sigmoid_and_derivative", np.float64): _math.sigmoid_and_derivative_f64,
    ("sigmoid_and_derivative", np.float32): _math.sigmoid_and_derivative_f32,
}


@njit
def _each(kernel, x, out):
    for i in range(x.size):
        out[i] = kernel(x[i])


@njit
def _each_pair(kernel, x, out_s, out_ds):
    for i in range(x.size):
        out_s[i], out_ds[i] = kernel(x[i])


def scalar_math(name: str, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """The results of kernel ``name`` on the 1-D array x from the scalar functions (a tuple)."""
    kernel = _SCALAR_FUNCTIONS[name, x.dtype.type]
    outs = tuple(np.empty_like(x) for _ in range(2 if name == "sigmoid_and_derivative" else 1))
    (_each_pair if len(outs) == 2 else _each)(kernel, x, *outs)
    return outs
