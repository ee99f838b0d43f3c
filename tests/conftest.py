import numpy as np
import pytest

FLOATS = [np.float64, np.float32]
ALL_FLOATS = [np.float64, np.float32, np.float16]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
