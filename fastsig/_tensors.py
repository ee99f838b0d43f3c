"""Torch tensors and GPU arrays passed to the functions of :mod:`fastsig`.

The CPU functions compute on NumPy arrays; NumPy would copy a torch tensor
into a new array and return an array. Instead:

* GPU data (anything with ``__cuda_array_interface__``: a torch CUDA tensor,
  a CuPy or numba device array) goes to :mod:`fastsig.cuda`, which computes
  it where it lives and returns the same kind of object. So the one call
  ``fastsig.sigmoid(x)`` chooses the device as it chooses the threads.
* A torch tensor on the CPU is computed on its own memory (``Tensor.numpy()``
  shares it: no copy) and the result comes back as a tensor, as torch's own
  functions return them; ``out=`` tensors and the in-place functions write
  into the tensor's memory and count as an in-place change for autograd.
  ``sigmoid`` of a tensor that requires grad takes part in autograd: the
  forward pass computes σ and σ' in one pass (as ``sigmoid_and_derivative``)
  and saves σ', so the backward pass is one multiply, accurate in the tails
  where ``s * (1 - s)`` from the saved output returns 0 (higher derivatives,
  with ``create_graph=True``, are torch's). The other functions do not
  differentiate and say so rather than cut the graph.

torch is never imported here: a tensor exists only once its user imported it.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np

_api: Any = None  # fastsig._api, which imports this module: bound on first use


def involved(args: tuple, out: Any) -> bool:
    """Is an argument or out= a torch tensor or GPU data? (torch.Tensor has
    __cuda_array_interface__ as a class attribute, as every GPU array type does.)"""
    for v in args:
        if type(v) is not np.ndarray and _has_interface(type(v)):
            return True
    if out is None:
        return False
    return any(_has_interface(type(v)) for v in (out if type(out) is tuple else (out,)))


_INTERFACE: dict[type, bool] = {}


def _has_interface(kind: type) -> bool:
    # Remembered per type: hasattr on a type without the attribute raises
    # and catches an AttributeError (0.6 µs here; the dict lookup 0.1), on
    # every call with a Python scalar or list.
    known = _INTERFACE.get(kind)
    if known is None:
        known = _INTERFACE[kind] = hasattr(kind, "__cuda_array_interface__")
    return known


def _on_gpu(value: Any, torch: Any) -> bool:
    if torch is not None and isinstance(value, torch.Tensor):
        return value.is_cuda
    return _has_interface(type(value))


def _host_array(value: Any, torch: Any, name: str) -> Any:
    """A CPU tensor as the NumPy array on its memory; anything else as it is.
    (Tensor.numpy() itself refuses what NumPy cannot share: bfloat16, sparse
    tensors, other devices; each attribute checked beforehand would cost
    0.2-0.3 µs of every call.)"""
    if torch is None or not isinstance(value, torch.Tensor):
        return value
    try:
        return (value.detach() if value.requires_grad else value).numpy()
    except (TypeError, RuntimeError) as error:
        if not value.is_cpu:
            what = f"one on {value.device}"
        elif value.layout is not torch.strided:
            what = f"a {value.layout} one"
        else:
            what = f"a {str(value.dtype).removeprefix('torch.')} one"
        raise TypeError(
            f"fastsig.{name} takes dense CPU or CUDA tensors of float16, float32, float64, integer or bool values; got {what}"
        ) from error


def _as_tensor(result: Any, torch: Any) -> Any:
    # A NumPy scalar (for a 0-d tensor) becomes a 0-d tensor, as torch's are.
    return torch.from_numpy(result if type(result) is np.ndarray else np.asarray(result))


def _as_tensors(result: Any, torch: Any) -> Any:
    """A function's result (one, or the pair of sigmoid_and_derivative) as tensors."""
    return tuple(_as_tensor(r, torch) for r in result) if type(result) is tuple else _as_tensor(result, torch)


def _counted_as_changed(tensors: tuple, torch: Any) -> None:
    """Tell autograd the tensors were written in place, as torch's own in-place
    and out= operations do: a tensor that some graph saved for its backward
    pass then makes that backward pass raise instead of using the new values."""
    for t in tensors:
        if isinstance(t, torch.Tensor):
            torch.autograd.graph.increment_version(t)


def _refuse_autograd(name: str, values: tuple, torch: Any) -> None:
    if torch.is_grad_enabled() and any(isinstance(v, torch.Tensor) and v.requires_grad for v in values):
        raise TypeError(
            f"fastsig.{name} does not take part in autograd (fastsig.sigmoid does): "
            "pass tensors that do not require grad (x.detach()), or call it under torch.no_grad()"
        )


def _bind_api() -> Any:
    global _api
    from . import _api as api

    _api = api
    return api


def call(name: str, args: tuple, out: Any) -> Any:
    """fastsig.<name>(*args, out=out) where an argument is a tensor or GPU data."""
    api = _api or _bind_api()
    torch = sys.modules.get("torch")
    if out is None and len(args) == 1 and torch is not None and type(x := args[0]) is torch.Tensor:
        # One tensor in, a tensor out: the common case in few steps (each
        # attribute of a tensor costs 0.2 µs). numpy() refuses a tensor that
        # requires grad, or on a GPU: the general path below takes those.
        try:
            array = x.numpy()
        except (TypeError, RuntimeError):
            pass
        else:
            return _as_tensors(getattr(api, name)(array), torch)
    outs = out if type(out) is tuple else (() if out is None else (out,))
    if any(_on_gpu(v, torch) for v in (*args, *outs)):
        from . import cuda

        return getattr(cuda, name)(*args) if out is None else getattr(cuda, name)(*args, out=out)
    # (Not on a GPU, so a tensor on the CPU is here, and torch with it.)
    x = args[0]
    if name == "sigmoid" and out is None and isinstance(x, torch.Tensor) and x.requires_grad and torch.is_grad_enabled():
        return _differentiable_sigmoid(torch).apply(x)
    _refuse_autograd(name, (*args, *outs), torch)
    arrays = tuple(_host_array(v, torch, name) for v in args)
    out_arrays = tuple(_host_array(o, torch, name) for o in outs)
    result = getattr(api, name)(*arrays, out=None if out is None else out_arrays if type(out) is tuple else out_arrays[0])
    if out is not None:
        _counted_as_changed(outs, torch)
        return out
    return _as_tensors(result, torch)


def in_place(name: str, x: Any) -> Any:
    """fastsig.<name>_(x) for a tensor or GPU data: x written over, returned."""
    api = _api or _bind_api()
    torch = sys.modules.get("torch")
    if torch is not None and type(x) is torch.Tensor:
        try:  # as in call: numpy() refuses what the general path below takes
            array = x.numpy()
        except (TypeError, RuntimeError):
            pass
        else:
            getattr(api, name + "_")(array)
            torch.autograd.graph.increment_version(x)
            return x
    if _on_gpu(x, torch):
        from . import cuda

        return getattr(cuda, name + "_")(x)
    _refuse_autograd(name + "_", (x,), torch)
    getattr(api, name + "_")(_host_array(x, torch, name + "_"))
    _counted_as_changed((x,), torch)
    return x


@functools.cache
def _differentiable_sigmoid(torch: Any) -> Any:
    """fastsig.sigmoid as a torch.autograd.Function (built once torch is here)."""
    api = _api or _bind_api()

    class FastsigSigmoid(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            s, ds = api.sigmoid_and_derivative(_host_array(x, torch, "sigmoid"))
            ctx.save_for_backward(x, _as_tensor(ds, torch))
            return _as_tensor(s, torch)

        @staticmethod
        def backward(ctx: Any, grad_output: Any) -> Any:
            x, ds = ctx.saved_tensors
            if torch.is_grad_enabled():
                # create_graph=True: the gradient must itself be differentiable.
                # Its value stays fastsig's σ'; its own derivative is that of
                # torch's s * (1 - s), which differentiates to any order.
                s = torch.sigmoid(x)
                slope = s * (1 - s)
                ds = ds + (slope - slope.detach())
            return grad_output * ds

    return FastsigSigmoid
