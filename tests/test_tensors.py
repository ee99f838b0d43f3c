"""torch tensors in the CPU functions: tensors out, their memory shared, autograd.

Skipped where torch is not installed (it is not in the test extra: pip
resolves torch here to a CUDA build with gigabytes of NVIDIA wheels).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import fastsig

torch = pytest.importorskip("torch")

_FLOATS = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}
_UNARY = ("sigmoid", "sigmoid_derivative")


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def logits(n: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    return (torch.rand(n, generator=g, dtype=torch.float64) * 80 - 40).to(dtype)


# A parallel call (2**17 elements is above every threshold) and a serial one.
@pytest.mark.parametrize("n", [1000, 1 << 17])
@pytest.mark.parametrize("dtype", list(_FLOATS))
@pytest.mark.parametrize("name", _UNARY)
def test_tensor_in_tensor_out_with_the_arrays_bits(name, dtype, n):
    x = logits(n, dtype)
    result = getattr(fastsig, name)(x)
    assert isinstance(result, torch.Tensor) and result.dtype == dtype and result.shape == x.shape
    assert same_bits(result.numpy(), getattr(fastsig, name)(x.numpy()))
    assert result.data_ptr() != x.data_ptr()


def test_fused_and_backward_give_tensors():
    x = logits(5000, torch.float32)
    s, ds = fastsig.sigmoid_and_derivative(x)
    assert isinstance(s, torch.Tensor) and isinstance(ds, torch.Tensor)
    assert same_bits(s.numpy(), fastsig.sigmoid(x.numpy())) and same_bits(ds.numpy(), fastsig.sigmoid_derivative(x.numpy()))
    grad = logits(5000, torch.float32)
    back = fastsig.sigmoid_backward(grad, s)
    assert isinstance(back, torch.Tensor)
    assert same_bits(back.numpy(), fastsig.sigmoid_backward(grad.numpy(), s.numpy()))
    # A tensor beside a NumPy array (broadcasting, as NumPy would) is still a tensor's call.
    row = fastsig.sigmoid_backward(grad[:10], s.numpy()[:10].copy())
    assert isinstance(row, torch.Tensor)


def test_layouts_dtypes_and_0d():
    m = logits(600).reshape(20, 30)
    for view in (m.T, m[:, ::3], m[::2]):
        assert same_bits(fastsig.sigmoid(view).numpy(), fastsig.sigmoid(view.numpy()))
    ints = torch.arange(-5, 5)
    assert fastsig.sigmoid(ints).dtype == torch.float64  # fastsig's rule: integers compute in float64
    assert fastsig.sigmoid(torch.tensor([True, False])).dtype == torch.float64
    zero_d = fastsig.sigmoid(torch.tensor(0.0))
    assert isinstance(zero_d, torch.Tensor) and zero_d.ndim == 0 and zero_d.item() == 0.5
    assert fastsig.sigmoid(torch.empty(0)).shape == (0,)


def test_out_tensors_are_written_returned_and_counted_as_changed():
    x = logits(3000)
    out = torch.empty_like(x)
    before = out._version
    assert fastsig.sigmoid(x, out=out) is out
    assert out._version > before
    assert same_bits(out.numpy(), fastsig.sigmoid(x.numpy()))
    pair = (torch.empty_like(x), torch.empty_like(x))
    assert fastsig.sigmoid_and_derivative(x, out=pair) is pair
    assert same_bits(pair[1].numpy(), fastsig.sigmoid_derivative(x.numpy()))
    into = torch.empty_like(x)  # NumPy input, tensor out
    assert fastsig.sigmoid_derivative(x.numpy(), out=into) is into
    assert same_bits(into.numpy(), fastsig.sigmoid_derivative(x.numpy()))
    for n in (100, 1 << 17):  # out=x: two arrays on one memory, serial and parallel
        t = logits(n)
        expected = fastsig.sigmoid(t.numpy())
        assert fastsig.sigmoid(t, out=t) is t and same_bits(t.numpy(), expected)
    with pytest.raises(ValueError, match="shape"):
        fastsig.sigmoid(x, out=torch.empty(7, dtype=x.dtype))


@pytest.mark.parametrize("name", _UNARY)
def test_in_place_on_a_tensor_and_its_views(name):
    x = logits(4096, torch.float32)
    expected = getattr(fastsig, name)(x.numpy())
    t = x.clone()
    alias = t.view(64, 64)  # another tensor on the same memory sees the change
    before = t._version
    assert getattr(fastsig, name + "_")(t) is t
    assert same_bits(t.numpy(), expected) and same_bits(alias.reshape(-1).numpy(), expected)
    assert t._version > before
    m = x.clone().reshape(64, 64)
    getattr(fastsig, name + "_")(m[:, 1::2])  # a strided view: only its elements change
    assert same_bits(m[:, 1::2].numpy(), expected.reshape(64, 64)[:, 1::2]) and same_bits(m[:, ::2].numpy(), x.reshape(64, 64)[:, ::2].numpy())
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        getattr(fastsig, name + "_")(torch.arange(3))


def test_in_place_change_of_a_saved_tensor_makes_its_backward_raise():
    w = torch.ones(10, dtype=torch.float64, requires_grad=True)
    x = logits(10)
    y = (w * x).sum()  # saves x for w's gradient
    fastsig.sigmoid_(x)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_sigmoid_takes_part_in_autograd_with_the_accurate_derivative():
    x = torch.tensor([-800.0, -100.0, -40.0, -4.0, 0.0, 1e-300, 4.0, 30.0, 40.0, 100.0], dtype=torch.float64, requires_grad=True)
    s = fastsig.sigmoid(x)
    assert s.requires_grad and same_bits(s.detach().numpy(), fastsig.sigmoid(x.detach().numpy()))
    s.backward(torch.ones_like(s))
    # The gradient is σ'(x), bit for bit: not s*(1-s), which is 0 from |x| > 37
    # (torch.sigmoid's own gradient at x = 40 is 0, σ'(40) = 4.25e-18).
    assert same_bits(x.grad.numpy(), fastsig.sigmoid_derivative(x.detach().numpy()))
    assert x.grad[8].item() == pytest.approx(4.248354255291589e-18, rel=1e-15)
    reference = x.detach().clone().requires_grad_()
    torch.sigmoid(reference).backward(torch.ones_like(reference))
    assert reference.grad[8].item() == 0.0
    np.testing.assert_allclose(x.grad.numpy()[3:7], reference.grad.numpy()[3:7], rtol=1e-12)  # |x| <= 4
    assert abs(reference.grad[7].item() / x.grad[7].item() - 1) > 1e-4  # x = 30: torch's is 0.1 % off


def test_gradcheck_float32_and_a_graph_around_it():
    x = logits(50).requires_grad_()
    assert torch.autograd.gradcheck(fastsig.sigmoid, (x,))
    x32 = logits(1000, torch.float32).requires_grad_()
    loss = (fastsig.sigmoid(x32 * 2) ** 2).sum()
    loss.backward()
    twice = (x32.detach() * 2).numpy()
    expected = 2 * 2 * fastsig.sigmoid(twice) * fastsig.sigmoid_derivative(twice)
    np.testing.assert_allclose(x32.grad.numpy(), expected, rtol=1e-5, atol=1e-37)


def test_higher_derivatives_with_create_graph():
    x = logits(200).requires_grad_()
    (g,) = torch.autograd.grad(fastsig.sigmoid(x).sum(), x, create_graph=True)
    assert same_bits(g.detach().numpy(), fastsig.sigmoid_derivative(x.detach().numpy()))  # the value: fastsig's σ'
    (g2,) = torch.autograd.grad(g.sum(), x)
    reference = x.detach().clone().requires_grad_()
    (r,) = torch.autograd.grad(torch.sigmoid(reference).sum(), reference, create_graph=True)
    (r2,) = torch.autograd.grad(r.sum(), reference)
    np.testing.assert_allclose(g2.numpy(), r2.numpy(), rtol=1e-13, atol=0)  # σ'' is torch's (rounded in another order)
    assert torch.autograd.gradgradcheck(fastsig.sigmoid, (logits(20).requires_grad_(),))


@pytest.mark.parametrize("name", ["sigmoid_derivative", "sigmoid_and_derivative"])
def test_the_other_functions_refuse_grad_tensors_unless_grad_is_off(name):
    x = logits(5).requires_grad_()
    with pytest.raises(TypeError, match="autograd"):
        getattr(fastsig, name)(x)
    with pytest.raises(TypeError, match="autograd"):
        fastsig.sigmoid_(x)
    with pytest.raises(TypeError, match="autograd"):
        fastsig.sigmoid(x, out=torch.empty(5, dtype=x.dtype))
    with torch.no_grad():
        parameter = torch.nn.Parameter(x.detach().clone())
        assert fastsig.sigmoid_(parameter) is parameter  # as torch's own in-place ops under no_grad
        result = getattr(fastsig, name)(x)
        first = result[0] if isinstance(result, tuple) else result
        assert isinstance(first, torch.Tensor) and not first.requires_grad
        plain = fastsig.sigmoid(x)
        assert plain.grad_fn is None


def test_unsupported_tensors_are_named():
    with pytest.raises(TypeError, match="bfloat16"):
        fastsig.sigmoid(torch.ones(3, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="sparse"):
        fastsig.sigmoid(torch.ones(3).to_sparse())
    with pytest.raises(TypeError, match="complex"):
        fastsig.sigmoid(torch.ones(3, dtype=torch.complex64))
    with pytest.raises(TypeError, match="meta"):
        fastsig.sigmoid(torch.empty(3, device="meta"))


def test_fastsig_never_imports_torch():
    code = (
        "import sys, numpy as np, fastsig; fastsig.sigmoid(np.ones(10)); fastsig.sigmoid_(np.ones(10)); "
        "fastsig.sigmoid(1.0); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
