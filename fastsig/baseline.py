"""The pure-NumPy textbook sigmoid: the reference that tests, benchmarks and
``fastsig check`` compare against.

It is written the way most code writes it, on purpose: 1/(1+exp(-x)) and
s*(1-s). It overflows in exp for x < -709 (returning the right 0 with an
overflow warning), loses the derivative's relative accuracy for |x| > 1 and
returns 0 for it beyond |x| ≈ 37 (float64) or 17 (float32).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def sigmoid(x: npt.ArrayLike) -> np.ndarray:
    """1 / (1 + exp(-x))."""
    return 1 / (1 + np.exp(-np.asarray(x)))


def sigmoid_derivative(x: npt.ArrayLike) -> np.ndarray:
    """s * (1 - s) with s = sigmoid(x)."""
    s = sigmoid(x)
    return s * (1 - s)


def sigmoid_and_derivative(x: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(s, s * (1 - s))."""
    s = sigmoid(x)
    return s, s * (1 - s)


def sigmoid_backward(grad_output: npt.ArrayLike, output: npt.ArrayLike) -> np.ndarray:
    """grad_output * output * (1 - output)."""
    output = np.asarray(output)
    return np.asarray(grad_output) * output * (1 - output)
