"""fastsig on NVIDIA GPUs (optional: ``pip install fastsig[cuda]``).

The functions here have the names and meanings of the CPU ones in
:mod:`fastsig` and compute the very same math: the grid-stride kernels below
call the scalar functions of :mod:`fastsig._math`, which numba-cuda compiles
for the GPU just as numba compiles them for the CPU. The results are meant
to be bitwise equal to the CPU path: every FMA is explicit, products whose
rounding matters are kept from being fused into FMAs by the CUDA compiler
(see ``fastsig._math.mul``), and division is IEEE on both. One exception:
a CPU with AVX-512 takes a reciprocal estimate and a Newton step where the
GPU divides (``fastsig._math.reciprocal``), and its results can be 1 ulp
apart from the GPU's: float32 in about 1 of 2**24 inputs, float64 in 0.15-1.2
%. The tests check the bits under the CUDA simulator, and check the
compiled code for sm_90 where NVVM is installed; the accuracy test on a
real device (float64 within 1 ulp, float32 within 2 ulp, and the CPU's
bits but for the reciprocal's) needs a GPU.

Where the data lives decides what happens:

* numba device arrays and any object with ``__cuda_array_interface__``
  (CuPy arrays, PyTorch CUDA tensors, ...) are read and written in place on
  the device, with no host copy. A result comes back as the same kind of
  object for CuPy and PyTorch inputs, as a numba device array otherwise.
* NumPy arrays (and anything NumPy converts: lists, scalars) are copied to
  the device, computed there and copied back; the result is a NumPy array.
  For data that is on the host anyway, the CPU functions in :mod:`fastsig`
  are usually faster than the two copies.

Importing this module imports neither numba.cuda nor a CUDA library: that
happens on the first call, and a missing numba-cuda, GPU or CUDA toolkit is
reported then, as a :class:`CudaUnavailableError` that says what to do.
:func:`cuda_status` describes the situation in one line without raising.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import sys
from typing import Any, Callable, Union

import numpy as np

from . import _math
from ._api import _check_out, _dtypes

__all__ = [
    "sigmoid",
    "sigmoid_derivative",
    "sigmoid_and_derivative",
    "sigmoid_backward",
    "sigmoid_",
    "sigmoid_derivative_",
    "cuda_status",
    "CudaUnavailableError",
]

#: What the functions return: a NumPy array or scalar for host input, the
#: input's kind (numba device array, CuPy array, torch tensor) otherwise.
Result = Union[np.ndarray, np.floating, Any]

# numba-cuda's cu12 / cu13 extras bring the toolkit libraries (NVVM, NVRTC)
# as wheels; which one depends on the CUDA version the driver supports.
_TOOLKIT_HINT = "pip install 'numba-cuda[cu13]', or 'numba-cuda[cu12]' for a CUDA 12 driver"
_INSTALL_HINT = f"pip install 'fastsig[cuda]'; for the CUDA libraries, {_TOOLKIT_HINT}"
_NOUT = {"sigmoid": 1, "sigmoid_derivative": 1, "sigmoid_and_derivative": 2, "sigmoid_backward": 1}

# Launch shape. A grid-stride loop lets a fixed grid of a few waves of
# blocks cover any size: enough blocks to fill every SM, few enough that
# launch cost stays flat for huge arrays.
THREADS_PER_BLOCK = 256
BLOCKS_PER_SM = 32
# numba-cuda warns (NumbaPerformanceWarning) about any grid under 128
# blocks. For a small array that warning is noise, not advice: the extra
# blocks find no element and exit at once, for a few microseconds.
MIN_BLOCKS = 128
# The simulator runs every GPU thread as a Python thread: small blocks and a
# small grid keep it fast while still spanning several blocks and strides.
_SIM_THREADS_PER_BLOCK = 32
_SIM_MAX_BLOCKS = 4


# numba.cuda once imported. The kernels reach it through this module global
# (not a closure variable): the simulator swaps module globals that refer to
# numba.cuda for its fake module while a kernel runs.
_nb_cuda: Any = None


class CudaUnavailableError(RuntimeError):
    """numba-cuda, a CUDA GPU or the CUDA toolkit libraries are missing."""


# --------------------------------------------------------------------------
# numba.cuda, imported on first use
# --------------------------------------------------------------------------
def _numba_cuda_version() -> str | None:
    try:
        return importlib.metadata.version("numba-cuda")
    except importlib.metadata.PackageNotFoundError:
        return None


def _import_cuda() -> Any:
    """numba.cuda as provided by numba-cuda.

    numba itself still ships a deprecated built-in CUDA target under the same
    name; fastsig needs the maintained numba-cuda package, which replaces it.
    """
    global _nb_cuda
    if _nb_cuda is None:
        if importlib.util.find_spec("numba_cuda") is None:
            raise CudaUnavailableError(f"fastsig.cuda needs numba-cuda, which is not installed: {_INSTALL_HINT}")
        from numba import cuda

        _nb_cuda = cuda
    return _nb_cuda


def _simulated(cuda: Any) -> bool:
    """True under NUMBA_ENABLE_CUDASIM=1, where kernels run on the CPU."""
    return bool(getattr(cuda.config, "ENABLE_CUDASIM", 0))


def _one_line(error: BaseException | str) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _driver_problem(cuda: Any) -> str:
    """Why numba-cuda found no device, as one line."""
    try:
        from numba.cuda.cudadrv import driver

        error = getattr(driver.driver, "initialization_error", None)
    except Exception as exc:  # noqa: BLE001 - any failure here is the answer
        error = exc
    return _one_line(error) if error else "no CUDA device was found"


def _require(name: str) -> Any:
    """numba.cuda, ready to launch kernels, or a CudaUnavailableError."""
    cuda = _import_cuda()
    if not cuda.is_available():
        raise CudaUnavailableError(
            f"fastsig.cuda.{name}: no usable CUDA GPU ({_driver_problem(cuda)}); "
            f"fastsig.{name} computes the same values on the CPU"
        )
    return cuda


def cuda_status() -> str:
    """One line saying whether fastsig.cuda can run here, and on which GPU.

    For ``fastsig info``. Never raises: whatever goes wrong is the answer.
    Loading the driver and the toolkit libraries takes a moment, but no
    CUDA context is created.

    Returns
    -------
    str
        For example ``"usable: GPU 0 of 1, NVIDIA H100 80GB HBM3 (compute
        capability 9.0); numba-cuda 0.30.4, NVVM 2.0"`` or ``"not available:
        numba-cuda is not installed: pip install 'fastsig[cuda]'; ..."``.
    """
    try:
        return _status()
    except BaseException as exc:  # noqa: BLE001 - a status line must never raise
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return f"unknown: {type(exc).__name__}: {_one_line(exc)}"


def _status() -> str:
    version = _numba_cuda_version()
    if importlib.util.find_spec("numba_cuda") is None:
        return f"not available: numba-cuda is not installed: {_INSTALL_HINT}"
    try:
        cuda = _import_cuda()
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
        return f"not available: numba-cuda {version} fails to import: {_one_line(exc)}"
    if _simulated(cuda):
        return f"simulator: NUMBA_ENABLE_CUDASIM=1, kernels run on the CPU for testing (numba-cuda {version})"
    if not cuda.is_available():
        return f"not available: no CUDA GPU found: {_driver_problem(cuda)} (numba-cuda {version})"
    devices = cuda.list_devices()
    device = devices[0]
    name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    cc = ".".join(str(part) for part in device.compute_capability)
    where = f"GPU 0 of {len(devices)}, {name} (compute capability {cc})"
    try:
        from numba.cuda.cudadrv import nvrtc, nvvm

        nvvm_version = ".".join(str(part) for part in nvvm.NVVM().get_version())
        nvrtc.get_supported_ccs()  # kernels need NVRTC too (numba-cuda looks up libdevice with it)
    except Exception as exc:  # noqa: BLE001 - missing toolkit libraries are the answer
        return (
            f"not usable: {where} found, but kernels cannot be compiled "
            f"({type(exc).__name__}: {_one_line(exc)}); {_TOOLKIT_HINT}"
        )
    return f"usable: {where}; numba-cuda {version}, NVVM {nvvm_version}"


# --------------------------------------------------------------------------
# Kernels: one grid-stride loop per operation, compiled per compute dtype.
# ``cast`` turns an element into the compute type (float64 for float64,
# float16, integer and bool input; float32 for float32), and storing into an
# output of another float type rounds once, as NumPy's casts do on the CPU.
# --------------------------------------------------------------------------
_SCALARS = {
    ("sigmoid", "float64"): _math.sigmoid_f64,
    ("sigmoid", "float32"): _math.sigmoid_f32,
    ("sigmoid_derivative", "float64"): _math.sigmoid_derivative_f64,
    ("sigmoid_derivative", "float32"): _math.sigmoid_derivative_f32,
    ("sigmoid_and_derivative", "float64"): _math.sigmoid_and_derivative_f64,
    ("sigmoid_and_derivative", "float32"): _math.sigmoid_and_derivative_f32,
    ("sigmoid_backward", "float64"): _math.sigmoid_backward_f64,
    ("sigmoid_backward", "float32"): _math.sigmoid_backward_f32,
}


def _kernel_source(name: str, compute: str) -> Callable:
    """The Python function of one kernel (shared by the launcher and the PTX check)."""
    from numba import types

    scalar = _SCALARS[name, compute]
    cast = getattr(types, compute)

    if name == "sigmoid_and_derivative":

        def fused(x, out_s, out_ds):
            for i in range(_nb_cuda.grid(1), x.size, _nb_cuda.gridsize(1)):
                out_s[i], out_ds[i] = scalar(cast(x[i]))

        return fused
    if name == "sigmoid_backward":

        def binary(grad_output, output, out):
            for i in range(_nb_cuda.grid(1), out.size, _nb_cuda.gridsize(1)):
                out[i] = scalar(cast(grad_output[i]), cast(output[i]))

        return binary

    def unary(x, out):
        for i in range(_nb_cuda.grid(1), x.size, _nb_cuda.gridsize(1)):
            out[i] = scalar(cast(x[i]))

    return unary


@functools.cache
def _kernel(name: str, compute: str) -> Any:
    """The ``@cuda.jit`` kernel; numba-cuda compiles it per argument types on first launch."""
    cuda = _import_cuda()
    return cuda.jit(_kernel_source(name, compute))


@functools.cache
def _max_blocks(device_id: int) -> int:
    cuda = _import_cuda()
    return cuda.get_current_device().MULTIPROCESSOR_COUNT * BLOCKS_PER_SM


def _launch(cuda: Any, name: str, compute: np.dtype, stream: Any, *arrays: Any) -> None:
    n = arrays[-1].size
    if n == 0:
        return
    if _simulated(cuda):
        threads = _SIM_THREADS_PER_BLOCK
        blocks = min(_SIM_MAX_BLOCKS, -(-n // threads))
    else:
        threads = THREADS_PER_BLOCK
        blocks = max(MIN_BLOCKS, min(_max_blocks(cuda.get_current_device().id), -(-n // threads)))
    kernel = _kernel(name, compute.name)
    try:
        kernel[blocks, threads, stream](*arrays)
    except Exception as exc:
        # The first launch compiles: name the missing toolkit instead of
        # numba-cuda's library search log.
        if type(exc).__name__ in ("NvvmSupportError", "NvrtcSupportError", "DynamicLibNotFoundError"):
            raise CudaUnavailableError(
                f"fastsig.cuda.{name}: the CUDA toolkit libraries (NVVM, NVRTC) were not found, "
                f"so kernels cannot be compiled: {_TOOLKIT_HINT}"
            ) from exc
        raise


def _ptx(cc: tuple[int, int] = (9, 0)) -> dict[str, str]:
    """PTX of every kernel for compute capability ``cc``, keyed by kernel and dtypes.

    Needs numba-cuda with NVVM and NVRTC, but no GPU. Compiling for the real
    target (not the simulator) checks that the shared scalar math, with its
    LLVM intrinsics, is accepted by the CUDA backend.
    """
    cuda = _import_cuda()
    from numba import types

    ptx = {}
    for name in _NOUT:
        for compute, elements in (("float64", ("float64", "float16")), ("float32", ("float32",))):
            source = _kernel_source(name, compute)
            for element in elements:
                array = getattr(types, element)[::1]
                nargs = 3 if name in ("sigmoid_and_derivative", "sigmoid_backward") else 2
                code, _ = cuda.compile_ptx(source, (array,) * nargs, cc=cc)
                ptx[f"{name}[{element}]"] = code
    return ptx


# --------------------------------------------------------------------------
# Device operands
# --------------------------------------------------------------------------
def _device_view(cuda: Any, obj: Any) -> Any | None:
    """A numba device array sharing obj's memory, or None for host data."""
    if _simulated(cuda):
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        if isinstance(obj, FakeCUDAArray):
            return obj
        if hasattr(obj, "__cuda_array_interface__"):
            # The simulator's "device memory" is host memory, so a pointer
            # from the interface is a host pointer: view it with NumPy.
            return FakeCUDAArray(_host_view_of_interface(obj))
        return None
    if cuda.is_cuda_array(obj):
        return obj if cuda.devicearray.is_cuda_ndarray(obj) else cuda.as_cuda_array(obj)
    return None


class _InterfaceHolder:
    """Carries a CUDA array interface as a NumPy one (simulator only)."""

    def __init__(self, owner: Any):
        cai = owner.__cuda_array_interface__
        self.owner = owner  # keeps the memory alive as long as the view
        self.__array_interface__ = {
            "shape": tuple(cai["shape"]),
            "typestr": cai["typestr"],
            "data": tuple(cai["data"]),
            "strides": cai.get("strides"),
            "version": 3,
        }


def _host_view_of_interface(obj: Any) -> np.ndarray:
    return np.asarray(_InterfaceHolder(obj))


def _is_readonly(obj: Any) -> bool:
    cai = getattr(obj, "__cuda_array_interface__", None)
    return bool(cai and cai["data"][1])


def _address_range(cuda: Any, dev: Any) -> tuple[int, int] | None:
    """[first byte, last byte + 1) of a device array's elements, None if empty."""
    if dev.size == 0:
        return None
    if _simulated(cuda):
        pointer = dev._ary.__array_interface__["data"][0]
    else:
        pointer = dev.__cuda_array_interface__["data"][0]
    strides = dev.strides
    low = pointer + sum(min(0, (s - 1) * st) for s, st in zip(dev.shape, strides))
    high = pointer + sum(max(0, (s - 1) * st) for s, st in zip(dev.shape, strides)) + dev.dtype.itemsize
    return low, high


def _same_elements(cuda: Any, a: Any, b: Any) -> bool:
    """True when a and b are the very same elements: a safe in-place pair."""
    return (
        _address_range(cuda, a) == _address_range(cuda, b)
        and a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
    )


def _overlap(cuda: Any, a: Any, b: Any) -> bool:
    ra, rb = _address_range(cuda, a), _address_range(cuda, b)
    return ra is not None and rb is not None and ra[0] < rb[1] and rb[0] < ra[1]


def _orders(dev: Any) -> set[str]:
    """The memory orders in which dev can be walked as one flat 1-D array."""
    if dev.ndim <= 1:
        return {"C", "F"}  # 1-D arrays may be strided: the kernels take any layout
    orders = set()
    if dev.is_c_contiguous():
        orders.add("C")
    if dev.is_f_contiguous():
        orders.add("F")
    return orders


def _flat(dev: Any, order: str) -> Any:
    if dev.ndim == 1:
        return dev
    return dev.reshape(dev.size, order=order)


def _allocate_like(cuda: Any, like: Any, shape: tuple, dtype: np.dtype, order: str, stream: Any) -> Any:
    """A new device array of like's kind (CuPy, PyTorch, else numba)."""
    package = type(like).__module__.partition(".")[0]
    if package == "cupy" and "cupy" in sys.modules:
        cupy = sys.modules["cupy"]
        with like.device:
            return cupy.empty(shape, dtype=dtype, order=order)
    if package == "torch" and "torch" in sys.modules:
        torch = sys.modules["torch"]
        tensor = torch.empty(shape if order == "C" else shape[::-1], dtype=getattr(torch, dtype.name), device=like.device)
        return tensor if order == "C" else tensor.permute(*reversed(range(len(shape))))
    return cuda.device_array(shape, dtype=dtype, order=order, stream=stream)


def _as_stream(cuda: Any, stream: Any) -> Any:
    """A numba stream for ``stream=``: None (the default stream), a numba
    stream, a raw cudaStream_t handle, or a CuPy / PyTorch / CUDA-stream-
    protocol stream object."""
    if stream is None:
        return 0
    if _simulated(cuda):
        numba_stream: type = cuda.stream
    else:
        from numba.cuda.cudadrv.driver import Stream as numba_stream
    if isinstance(stream, numba_stream):
        return stream
    if hasattr(stream, "__cuda_stream__"):  # the CUDA stream protocol
        handle = stream.__cuda_stream__()[1]
    elif hasattr(stream, "cuda_stream"):  # torch.cuda.Stream
        handle = stream.cuda_stream
    elif hasattr(stream, "ptr"):  # cupy.cuda.Stream
        handle = stream.ptr
    elif isinstance(stream, (int, np.integer)) and not isinstance(stream, bool):
        handle = stream
    else:
        raise TypeError(
            f"stream= takes a numba, CuPy or PyTorch stream or a cudaStream_t handle, got {type(stream).__name__}"
        )
    # Not ours to synchronize or destroy: numba wraps it without owning it.
    return cuda.external_stream(int(handle)) if int(handle) else 0


# --------------------------------------------------------------------------
# The two call paths
# --------------------------------------------------------------------------
def _call(name: str, args: tuple, out: Any, stream: Any) -> Any:
    cuda = _require(name)
    stream = _as_stream(cuda, stream)
    views = [_device_view(cuda, a) for a in args]
    if all(v is None for v in views):
        return _call_host(cuda, name, args, out, stream)
    if any(v is None for v in views):
        raise TypeError(
            f"fastsig.cuda.{name}: some inputs are on the GPU and some on the host; "
            "pass all of them as device arrays (numba.cuda.to_device, CuPy, torch) or all as NumPy arrays"
        )
    return _call_device(cuda, name, args, views, out, stream)


def _call_device(cuda: Any, name: str, args: tuple, views: list, out: Any, stream: Any) -> Any:
    nout = _NOUT[name]
    qualified = f"cuda.{name}"
    compute, result_dtype = _dtypes(views, qualified)
    shape = tuple(views[0].shape)
    if any(tuple(v.shape) != shape for v in views):
        raise ValueError(
            f"fastsig.cuda.{name}: device inputs must have one shape (no broadcasting on the GPU), "
            f"got {[tuple(v.shape) for v in views]}"
        )

    outs = None if out is None else _check_device_out(cuda, name, out, nout, shape)
    operands = views + ([o for _, o in outs] if outs else [])
    orders = set.intersection(*(_orders(v) for v in operands))
    if not orders:
        raise ValueError(
            f"fastsig.cuda.{name}: every array must be contiguous, all in the same order (C or Fortran), "
            "or 1-D; make a contiguous copy first (e.g. cupy.ascontiguousarray, tensor.contiguous())"
        )
    order = "C" if "C" in orders else "F"
    if outs is not None:
        for label, o in outs:
            if any(_overlap(cuda, o, v) and not _same_elements(cuda, o, v) for v in views):
                raise ValueError(f"fastsig.cuda.{name}: {label} overlaps an input without being the same array")
        if nout == 2 and _overlap(cuda, outs[0][1], outs[1][1]):
            raise ValueError(f"fastsig.cuda.{name}: out[0] and out[1] must not overlap")
        results = out if nout > 1 else (out,)
        targets = [view for _, view in outs]
    else:
        results = tuple(_allocate_like(cuda, args[0], shape, result_dtype, order, stream) for _ in range(nout))
        targets = [_device_view(cuda, r) for r in results]

    _launch(cuda, name, compute, stream, *(_flat(v, order) for v in views), *(_flat(t, order) for t in targets))
    return results if nout > 1 else results[0]


def _check_device_out(cuda: Any, name: str, out: Any, nout: int, shape: tuple) -> list[tuple[str, Any]]:
    """[(label, device view)] for out=, checked like the CPU's out=."""
    outs = out if isinstance(out, tuple) else (out,)
    if len(outs) != nout:
        expected = "one device array" if nout == 1 else f"a tuple of {nout} device arrays"
        raise TypeError(f"fastsig.cuda.{name}: out= must be {expected}")
    checked = []
    for i, o in enumerate(outs):
        label = "out" if nout == 1 else f"out[{i}]"
        view = _device_view(cuda, o)
        if view is None:
            raise TypeError(
                f"fastsig.cuda.{name}: the inputs are on the GPU, so {label} must be a device array, "
                f"got {type(o).__name__}"
            )
        if _is_readonly(o):
            raise ValueError(f"fastsig.cuda.{name}: {label} is read-only")
        if view.dtype.kind != "f" or view.dtype.itemsize > 8:
            raise TypeError(
                f"fastsig.cuda.{name}: {label} has dtype {view.dtype.name}; it must be float16, float32 or float64"
            )
        if tuple(view.shape) != shape:
            raise ValueError(f"fastsig.cuda.{name}: {label} has shape {tuple(view.shape)}, but the result has shape {shape}")
        checked.append((label, view))
    return checked


def _call_host(cuda: Any, name: str, args: tuple, out: Any, stream: Any) -> Any:
    """Copy NumPy data to the device, compute there, copy the result back."""
    nout = _NOUT[name]
    qualified = f"cuda.{name}"
    arrays = [np.asarray(a) for a in args]
    compute, result_dtype = _dtypes(arrays, qualified)
    shape = arrays[0].shape if len(arrays) == 1 else np.broadcast_shapes(*(a.shape for a in arrays))
    outs = _check_out(out, tuple(shape), nout, f"cuda.{name}")
    # With out=, the device writes out's dtype directly: one rounding from
    # the compute dtype, as NumPy's cast into out does on the CPU.
    dtypes = [result_dtype] * nout if outs is None else [o.dtype for o in outs]

    host_inputs = [
        np.ascontiguousarray(np.broadcast_to(a, shape), dtype=a.dtype.newbyteorder("=")).reshape(-1)
        for a in arrays
    ]
    size = int(np.prod(shape, dtype=np.int64))
    device_inputs = [cuda.to_device(a, stream=stream) for a in host_inputs]
    device_results = [cuda.device_array(size, dtype=d.newbyteorder("="), stream=stream) for d in dtypes]
    _launch(cuda, name, compute, stream, *device_inputs, *device_results)
    results = [r.copy_to_host(stream=stream).reshape(shape) for r in device_results]
    if not isinstance(stream, int):  # 0 is the default stream, which copy_to_host waited for
        stream.synchronize()
    if outs is not None:
        for o, r in zip(outs, results):
            np.copyto(o, r, casting="unsafe")  # same dtype unless out is non-native byte order
        return outs if nout > 1 else outs[0]
    if not shape:  # scalar or 0-d input: a NumPy scalar, as on the CPU
        results = [r[()] for r in results]
    return tuple(results) if nout > 1 else results[0]


# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------
def sigmoid(x: Any, /, out: Any = None, *, stream: Any = None) -> Result:
    """Logistic sigmoid σ(x) = 1 / (1 + e^-x), element-wise, on the GPU.

    The same values, bit for bit, as :func:`fastsig.sigmoid`: within 1 ulp,
    σ(±0) = 0.5, σ(+inf) = 1, σ(-inf) = 0, NaN stays NaN.

    Parameters
    ----------
    x : device array or array_like
        float16, float32, float64, integer or bool values. Device arrays
        (numba, CuPy, PyTorch CUDA tensors: anything with
        ``__cuda_array_interface__``) are read in place, with no host copy;
        they must be contiguous (C or Fortran order) or 1-D. NumPy input
        (and lists, scalars) is copied to the GPU and the result copied
        back, which rarely beats :func:`fastsig.sigmoid` on the CPU.
    out : device array or ndarray, optional
        Where to write the result: a float16, float32 or float64 array of
        x's shape, on the same side as x. ``out=x`` computes in place.
    stream : optional
        The CUDA stream to run on: a numba stream, a CuPy or PyTorch stream,
        or a raw ``cudaStream_t`` handle. Default: the default stream. For
        NumPy input the call waits for the stream before returning.

    Returns
    -------
    device array, ndarray or scalar
        σ(x) in x's float dtype (float64 for integers and bool): the kind
        of object x is for CuPy and PyTorch input, a numba device array for
        other device input, a NumPy array (a NumPy scalar for scalar input)
        for host input. ``out`` itself when given.

    Raises
    ------
    CudaUnavailableError
        Without numba-cuda, a CUDA GPU or the CUDA toolkit libraries.
    TypeError
        For complex, object or other non-numeric input, or when inputs and
        ``out`` are not all on the same side (device or host).

    Examples
    --------
    >>> import numpy as np, fastsig.cuda
    >>> from numba import cuda                       # doctest: +SKIP
    >>> d = cuda.to_device(np.array([-1.0, 0.0, 1.0]))  # doctest: +SKIP
    >>> fastsig.cuda.sigmoid(d).copy_to_host()       # doctest: +SKIP
    array([0.26894142, 0.5       , 0.73105858])
    """
    return _call("sigmoid", (x,), out, stream)


def sigmoid_derivative(x: Any, /, out: Any = None, *, stream: Any = None) -> Result:
    """Derivative of the logistic sigmoid, σ'(x) = σ(x)σ(-x), on the GPU.

    Bitwise equal to :func:`fastsig.sigmoid_derivative`: computed from
    e^-|x|, so it keeps full relative accuracy in the tails (σ'(-745) is
    5e-324, not 0). σ'(0) = 0.25, σ'(±inf) = 0, NaN stays NaN.

    Parameters
    ----------
    x, out, stream
        As for :func:`sigmoid`: device arrays are used in place, NumPy input
        is copied to the GPU and back.

    Returns
    -------
    device array, ndarray or scalar
        As for :func:`sigmoid`.
    """
    return _call("sigmoid_derivative", (x,), out, stream)


def sigmoid_and_derivative(x: Any, /, out: tuple[Any, Any] | None = None, *, stream: Any = None) -> tuple[Result, Result]:
    """σ(x) and σ'(x) in one pass over x, on the GPU.

    Bitwise equal to ``(sigmoid(x), sigmoid_derivative(x))`` and to the CPU's
    :func:`fastsig.sigmoid_and_derivative`, with one read of x.

    Parameters
    ----------
    x, stream
        As for :func:`sigmoid`: device arrays are used in place, NumPy input
        is copied to the GPU and back.
    out : tuple of two arrays, optional
        ``(s_out, ds_out)``, on the same side as x; either may be x itself,
        but not both.

    Returns
    -------
    (s, ds) : tuple
        Each as :func:`sigmoid` would return it.
    """
    return _call("sigmoid_and_derivative", (x,), out, stream)


def sigmoid_backward(grad_output: Any, output: Any, /, out: Any = None, *, stream: Any = None) -> Result:
    """The backward step of a sigmoid layer, ``grad_output * output * (1 - output)``, on the GPU.

    ``output`` is the activation σ(x) saved in the forward pass, as in
    ``torch.ops.aten.sigmoid_backward``. Bitwise equal to
    :func:`fastsig.sigmoid_backward`.

    Parameters
    ----------
    grad_output, output : device arrays or array_like
        Both on the GPU (same shape: no broadcasting on the device) or both
        host data (NumPy broadcasting applies; copied to the GPU and back).
        The result is float32 when both are float32, float16 when both are
        float16, float64 otherwise.
    out, stream
        As for :func:`sigmoid`.

    Returns
    -------
    device array, ndarray or scalar
        Of grad_output's kind, as for :func:`sigmoid`.
    """
    return _call("sigmoid_backward", (grad_output, output), out, stream)


def _in_place(name: str, x: Any, stream: Any) -> Any:
    cuda = _require(name)
    if isinstance(x, np.ndarray):
        dtype = x.dtype
    else:
        view = _device_view(cuda, x)
        if view is None:
            raise TypeError(
                f"fastsig.cuda.{name} overwrites a device array or a NumPy array; got {type(x).__name__} "
                f"(fastsig.cuda.{name.rstrip('_')} returns a new one)"
            )
        dtype = view.dtype
    if dtype.kind != "f" or dtype.itemsize > 8:
        raise TypeError(f"fastsig.cuda.{name} overwrites a float16, float32 or float64 array; got {dtype.name}")
    _call(name.rstrip("_"), (x,), x, stream)
    return x


def sigmoid_(x: Any, /, *, stream: Any = None) -> Any:
    """σ(x) written over x (a float device array, or a NumPy array: copied to the GPU and back); returns x."""
    return _in_place("sigmoid_", x, stream)


def sigmoid_derivative_(x: Any, /, *, stream: Any = None) -> Any:
    """σ'(x) written over x (a float device array, or a NumPy array: copied to the GPU and back); returns x."""
    return _in_place("sigmoid_derivative_", x, stream)
