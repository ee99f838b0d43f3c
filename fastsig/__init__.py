"""fastsig: the logistic sigmoid and its derivative, accurate to the last bit and fast.

>>> import numpy as np, fastsig
>>> fastsig.sigmoid(np.array([-1.0, 0.0, 1.0]))
array([0.26894142, 0.5       , 0.73105858])

Importing fastsig compiles nothing: each kernel is compiled on first use.
"""

from ._api import (
    sigmoid,
    sigmoid_,
    sigmoid_and_derivative,
    sigmoid_backward,
    sigmoid_derivative,
    sigmoid_derivative_,
)
from ._kernels import get_num_threads, num_threads, set_num_threads
from ._memory import release as release_memory
from . import baseline

__version__ = "0.1.0"

__all__ = [
    "sigmoid",
    "sigmoid_derivative",
    "sigmoid_and_derivative",
    "sigmoid_backward",
    "sigmoid_",
    "sigmoid_derivative_",
    "baseline",
    "get_num_threads",
    "set_num_threads",
    "num_threads",
    "release_memory",
    "__version__",
]
