"""fastsig.cuda against the CPU path.

Under NUMBA_ENABLE_CUDASIM=1 the kernels run in the simulator, which calls
the same scalar functions of fastsig._math as the CPU kernels, so results
must be bitwise equal (on a real GPU too, but for the reciprocal where the
CPU has AVX-512: see matches_cpu); the arrays are a few hundred elements, spread over
several blocks and several turns of the grid-stride loop. On a real GPU the
same tests run, plus the accuracy and interoperability ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsig
import fastsig.cuda as fc
from fastsig import _math, accuracy

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
ALL_FLOATS = [np.float64, np.float32, np.float16]
UNARY = ["sigmoid", "sigmoid_derivative"]


def specials(dtype) -> np.ndarray:
    """Special and boundary values that every kernel must get exactly right."""
    info = np.finfo(dtype)
    values = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5,
              float(info.smallest_subnormal), -float(info.smallest_subnormal),
              float(info.tiny), -float(info.tiny), float(info.max), -float(info.max),
              17.0, -17.0, 37.0, -37.0, 88.7, -88.7, 103.9, -103.9, 708.4, -708.4, 745.1, -745.1, 750.0, -750.0]
    with np.errstate(over="ignore"):
        return np.array(values).astype(dtype)


@pytest.fixture(scope="session")
def values():
    """dtype -> a few hundred inputs: the special values and a sample of the whole domain."""
    rng = np.random.default_rng(7)
    out = {}
    for dtype in ALL_FLOATS:
        sample = accuracy.sample(dtype, 400, seed=3)
        sample = rng.choice(sample, size=min(sample.size, 400), replace=False)
        out[np.dtype(dtype)] = np.concatenate([specials(dtype), sample.astype(dtype)])
    return out


def bitwise_equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


# On real hardware the GPU divides where a CPU with AVX-512 takes vrcp14 and
# a Newton step (_math.reciprocal): results may then differ by 1 ulp, float32
# in about 1 of 2**24 inputs (198 of the 2**32), float64 in 0.15-1.2 % of them
# (the estimate is refined to 2**-28 only, which the quotients' correction
# squares). The simulator runs the CPU's code.
RECIPROCAL_MAY_DIFFER = not SIMULATED and _math.cpu_has_avx512()
# Of n results, how many may be 1 ulp apart from the CPU's.
_MAY_DIFFER = {np.dtype(np.float32): lambda n: max(1, n // 10**6), np.dtype(np.float64): lambda n: max(1, n // 40)}


def matches_cpu(gpu, cpu) -> bool:
    """GPU results against the CPU's: the same bits (but for the reciprocal's 1 ulp above)."""
    gpu, cpu = np.asarray(gpu), np.asarray(cpu)
    if bitwise_equal(gpu, cpu):
        return True
    if not (RECIPROCAL_MAY_DIFFER and gpu.dtype == cpu.dtype and gpu.dtype in _MAY_DIFFER and gpu.shape == cpu.shape):
        return False
    bits = np.int32 if gpu.dtype == np.float32 else np.int64
    apart = np.abs(gpu.view(bits).astype(np.int64) - cpu.view(bits).astype(np.int64))
    return apart.max() <= 1 and np.count_nonzero(apart) <= _MAY_DIFFER[gpu.dtype](gpu.size)


def host(result):
    """A device result as a NumPy array."""
    return result if isinstance(result, np.ndarray) else result.copy_to_host()


# --------------------------------------------------------------------------
# same bits as the CPU
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL_FLOATS)
@pytest.mark.parametrize("name", UNARY)
def test_device_arrays_match_cpu(cuda, values, name, dtype):
    x = values[np.dtype(dtype)]
    d = cuda.to_device(x)
    result = getattr(fc, name)(d)
    assert not isinstance(result, np.ndarray)  # stays on the device
    assert matches_cpu(host(result), getattr(fastsig, name)(x))
    assert bitwise_equal(d.copy_to_host(), x)  # the input is untouched


@pytest.mark.parametrize("dtype", ALL_FLOATS)
def test_numpy_input_is_copied_and_matches_cpu(cuda, values, dtype):
    x = values[np.dtype(dtype)]
    before = x.copy()
    result = fc.sigmoid(x)
    assert isinstance(result, np.ndarray)
    assert matches_cpu(result, fastsig.sigmoid(x))
    assert bitwise_equal(x, before)


@pytest.mark.parametrize("dtype", ALL_FLOATS)
def test_fused_matches_separate_and_cpu(cuda, values, dtype):
    x = values[np.dtype(dtype)]
    s, ds = fc.sigmoid_and_derivative(cuda.to_device(x))
    assert matches_cpu(host(s), fastsig.sigmoid(x))
    assert matches_cpu(host(ds), fastsig.sigmoid_derivative(x))


@pytest.mark.parametrize("dtype", ALL_FLOATS)
def test_backward_matches_cpu(cuda, values, dtype):
    x = values[np.dtype(dtype)]
    output = fastsig.sigmoid(x)
    grad = np.random.default_rng(1).standard_normal(x.size).astype(dtype)
    expected = fastsig.sigmoid_backward(grad, output)
    on_device = fc.sigmoid_backward(cuda.to_device(grad), cuda.to_device(output))
    assert bitwise_equal(host(on_device), expected)
    assert bitwise_equal(fc.sigmoid_backward(grad, output), expected)


def test_backward_broadcasts_host_input_and_rejects_it_on_device(cuda):
    grad = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    output = np.array([0.1, 0.5, 0.9, 1.0])
    assert bitwise_equal(fc.sigmoid_backward(grad, output), fastsig.sigmoid_backward(grad, output))
    with pytest.raises(ValueError, match="one shape"):
        fc.sigmoid_backward(cuda.to_device(grad), cuda.to_device(output))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(cuda, dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=dtype)
    s, ds = (host(r) for r in fc.sigmoid_and_derivative(cuda.to_device(x)))
    np.testing.assert_array_equal(s, np.array([0.5, 0.5, 1.0, 0.0, np.nan], dtype=dtype))
    np.testing.assert_array_equal(ds, np.array([0.25, 0.25, 0.0, 0.0, np.nan], dtype=dtype))
    # the derivative stays accurate where s*(1-s) would be 0
    tail = host(fc.sigmoid_derivative(cuda.to_device(np.array([-745.0, 745.0]))))
    np.testing.assert_array_equal(tail, [5e-324, 5e-324])


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_integer_and_bool_input_computes_in_float64(cuda, dtype):
    x = np.arange(-40, 40).astype(dtype)
    result = host(fc.sigmoid(cuda.to_device(x)))
    assert matches_cpu(result, fastsig.sigmoid(x))


def test_scalar_and_empty_input(cuda):
    assert fc.sigmoid(0.0) == 0.5 and isinstance(fc.sigmoid(0.0), np.float64)
    assert fc.sigmoid_derivative(np.float32(0)).dtype == np.float32
    assert fc.sigmoid(np.empty(0)).shape == (0,)
    assert host(fc.sigmoid(cuda.to_device(np.empty((0, 3), np.float32)))).shape == (0, 3)


# --------------------------------------------------------------------------
# out=, in place, layouts
# --------------------------------------------------------------------------
def test_device_out_is_written_and_returned(cuda, values):
    x = values[np.dtype(np.float64)]
    out = cuda.device_array(x.shape, np.float64)
    assert fc.sigmoid(cuda.to_device(x), out=out) is out
    assert matches_cpu(out.copy_to_host(), fastsig.sigmoid(x))
    s, ds = cuda.device_array(x.shape, np.float64), cuda.device_array(x.shape, np.float64)
    pair = (s, ds)
    assert fc.sigmoid_and_derivative(cuda.to_device(x), out=pair) is pair
    assert matches_cpu(ds.copy_to_host(), fastsig.sigmoid_derivative(x))


@pytest.mark.parametrize(("in_dtype", "out_dtype"), [(np.float64, np.float32), (np.float32, np.float64), (np.float16, np.float32)])
def test_out_of_another_float_dtype_rounds_like_the_cpu(cuda, values, in_dtype, out_dtype):
    x = values[np.dtype(in_dtype)]
    expected = fastsig.sigmoid(x, out=np.empty(x.shape, out_dtype))
    out = cuda.device_array(x.shape, out_dtype)
    fc.sigmoid(cuda.to_device(x), out=out)
    assert bitwise_equal(out.copy_to_host(), expected)
    host_out = np.empty(x.shape, out_dtype)
    assert fc.sigmoid(x, out=host_out) is host_out
    assert bitwise_equal(host_out, expected)


@pytest.mark.parametrize("name", UNARY)
def test_in_place_on_device_and_host(cuda, values, name):
    x = values[np.dtype(np.float32)]
    d = cuda.to_device(x)
    assert getattr(fc, name + "_")(d) is d
    assert matches_cpu(d.copy_to_host(), getattr(fastsig, name)(x))
    h = x.copy()
    assert getattr(fc, name + "_")(h) is h
    assert matches_cpu(h, getattr(fastsig, name)(x))


def test_out_may_be_the_input(cuda, values):
    x = values[np.dtype(np.float64)]
    d = cuda.to_device(x)
    s, ds = fc.sigmoid_and_derivative(d, out=(d, cuda.device_array(x.shape)))
    assert s is d
    assert matches_cpu(d.copy_to_host(), fastsig.sigmoid(x))


@pytest.mark.parametrize("order", ["C", "F"])
def test_2d_contiguous_layouts(cuda, values, order):
    x = np.asarray(values[np.dtype(np.float64)][:420].reshape(20, 21), order=order)
    d = cuda.to_device(x)
    result = host(fc.sigmoid(d))
    assert result.shape == (20, 21)
    assert matches_cpu(np.ascontiguousarray(result), np.ascontiguousarray(fastsig.sigmoid(x)))


def test_strided_1d_device_array(cuda, values):
    x = values[np.dtype(np.float64)]
    d = cuda.to_device(x)[::3]
    assert matches_cpu(host(fc.sigmoid(d)), fastsig.sigmoid(x[::3]))
    assert matches_cpu(fc.sigmoid(x[::3]), fastsig.sigmoid(x[::3]))  # host: copied contiguous


def test_non_contiguous_2d_device_array_is_refused(cuda):
    d = cuda.to_device(np.ones((6, 8)))[:, ::2]
    with pytest.raises(ValueError, match="contiguous"):
        fc.sigmoid(d)


def test_streams(cuda, values):
    x = values[np.dtype(np.float32)]
    stream = cuda.stream()
    d = cuda.to_device(x, stream=stream)
    result = fc.sigmoid(d, stream=stream)
    stream.synchronize()
    assert matches_cpu(result.copy_to_host(), fastsig.sigmoid(x))
    assert matches_cpu(fc.sigmoid_derivative(x, stream=stream), fastsig.sigmoid_derivative(x))
    with pytest.raises(TypeError, match="stream"):
        fc.sigmoid(d, stream="fast")


# --------------------------------------------------------------------------
# objects with __cuda_array_interface__ (CuPy, torch)
# --------------------------------------------------------------------------
class HostBackedCudaArray:
    """Stands in for a CuPy array under the simulator, whose "device memory"
    is host memory: it exposes a NumPy array through the CUDA interface."""

    def __init__(self, array: np.ndarray, readonly: bool = False):
        self.array = array
        self.readonly = readonly

    @property
    def __cuda_array_interface__(self) -> dict:
        a = self.array
        return {
            "shape": a.shape,
            "typestr": a.dtype.str,
            "data": (a.ctypes.data, self.readonly),
            "strides": None if a.flags.c_contiguous else a.strides,
            "version": 3,
        }


@pytest.mark.skipif(not SIMULATED, reason="host-backed interface objects exist only in the simulator")
def test_cuda_array_interface_objects_are_used_in_place(cuda, values):
    x = values[np.dtype(np.float64)]
    result = fc.sigmoid(HostBackedCudaArray(x.copy()))
    assert matches_cpu(host(result), fastsig.sigmoid(x))  # unknown kind: a numba device array
    out = HostBackedCudaArray(np.empty_like(x))
    assert fc.sigmoid_derivative(HostBackedCudaArray(x), out=out) is out
    assert matches_cpu(out.array, fastsig.sigmoid_derivative(x))
    inplace = HostBackedCudaArray(x.copy())
    assert fc.sigmoid_(inplace) is inplace
    assert matches_cpu(inplace.array, fastsig.sigmoid(x))
    with pytest.raises(ValueError, match="read-only"):
        fc.sigmoid(HostBackedCudaArray(x), out=HostBackedCudaArray(np.empty_like(x), readonly=True))


@pytest.mark.skipif(not SIMULATED, reason="host-backed interface objects exist only in the simulator")
def test_the_cpu_functions_hand_gpu_data_to_fastsig_cuda(cuda, values, monkeypatch):
    # fastsig.sigmoid(x) chooses the device: GPU data goes to fastsig.cuda.
    x = values[np.dtype(np.float32)]
    called = []
    original = fc.sigmoid
    monkeypatch.setattr(fc, "sigmoid", lambda *a, **k: called.append(1) or original(*a, **k))
    result = fastsig.sigmoid(HostBackedCudaArray(x.copy()))
    assert called and bitwise_equal(host(result), fc.sigmoid(x))
    s_out, ds_out = HostBackedCudaArray(np.empty_like(x)), HostBackedCudaArray(np.empty_like(x))
    assert fastsig.sigmoid_and_derivative(HostBackedCudaArray(x), out=(s_out, ds_out)) == (s_out, ds_out)
    assert bitwise_equal(s_out.array, host(fc.sigmoid(x))) and bitwise_equal(ds_out.array, host(fc.sigmoid_derivative(x)))
    inplace = HostBackedCudaArray(x.copy())
    assert fastsig.sigmoid_derivative_(inplace) is inplace
    assert bitwise_equal(inplace.array, host(fc.sigmoid_derivative(x)))
    grad = HostBackedCudaArray(x.copy())
    assert bitwise_equal(host(fastsig.sigmoid_backward(grad, s_out)), fastsig.sigmoid_backward(x, s_out.array))


@pytest.mark.skipif(SIMULATED, reason="needs a real GPU")
def test_cupy_in_cupy_out():
    cupy = pytest.importorskip("cupy")
    x = np.linspace(-30, 30, 100_001)
    result = fc.sigmoid(cupy.asarray(x))
    assert isinstance(result, cupy.ndarray)
    assert matches_cpu(cupy.asnumpy(result), fastsig.sigmoid(x))


@pytest.mark.skipif(SIMULATED, reason="needs a real GPU")
def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    x = np.linspace(-30, 30, 100_001, dtype=np.float32)
    t = torch.from_numpy(x).cuda()
    result = fc.sigmoid(t)
    assert isinstance(result, torch.Tensor) and result.is_cuda
    assert matches_cpu(result.cpu().numpy(), fastsig.sigmoid(x))
    assert fc.sigmoid_derivative_(t) is t
    assert matches_cpu(t.cpu().numpy(), fastsig.sigmoid_derivative(x))
    grid = torch.from_numpy(x[:1000].reshape(20, 50)).cuda().T  # Fortran-ordered view
    result = fc.sigmoid(grid)
    assert isinstance(result, torch.Tensor) and result.stride() == grid.stride()
    assert matches_cpu(result.cpu().numpy(), fastsig.sigmoid(grid.cpu().numpy()))


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------
def test_argument_errors(cuda):
    d = cuda.to_device(np.ones(10))
    with pytest.raises(TypeError, match="does not accept complex128"):
        fc.sigmoid(np.ones(3, complex))
    with pytest.raises(TypeError, match="some inputs are on the GPU"):
        fc.sigmoid_backward(d, np.ones(10))
    with pytest.raises(TypeError, match="must be a device array"):
        fc.sigmoid(d, out=np.empty(10))
    with pytest.raises(TypeError, match="must be a NumPy array"):
        fc.sigmoid(np.ones(10), out=d)
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        fc.sigmoid(d, out=cuda.device_array(10, np.int64))
    with pytest.raises(ValueError, match="shape"):
        fc.sigmoid(d, out=cuda.device_array(11))
    with pytest.raises(TypeError, match="tuple of 2"):
        fc.sigmoid_and_derivative(d, out=cuda.device_array(10))
    with pytest.raises(ValueError, match="must not overlap"):
        out = cuda.device_array(10)
        fc.sigmoid_and_derivative(d, out=(out, out))
    with pytest.raises(ValueError, match="overlaps an input"):
        big = cuda.to_device(np.ones(20))
        fc.sigmoid(big[:10], out=big[5:15])
    with pytest.raises(TypeError, match="overwrites a float16, float32 or float64"):
        fc.sigmoid_(cuda.to_device(np.arange(4)))
    with pytest.raises(TypeError, match="overwrites a device array or a NumPy array"):
        fc.sigmoid_([1.0, 2.0])


def test_missing_numba_cuda_and_missing_gpu_are_clear_errors(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        fc.importlib.util, "find_spec", lambda name, *a: None if name == "numba_cuda" else find_spec(name, *a)
    )
    monkeypatch.setattr(fc, "_nb_cuda", None)
    with pytest.raises(fc.CudaUnavailableError, match=r"pip install 'fastsig\[cuda\]'"):
        fc.sigmoid(np.ones(3))
    assert fc.cuda_status().startswith("not available: numba-cuda is not installed")
    monkeypatch.undo()

    cuda = fc._import_cuda()
    monkeypatch.setattr(cuda, "is_available", lambda: False)
    monkeypatch.setattr(fc, "_simulated", lambda cuda: False)
    with pytest.raises(fc.CudaUnavailableError, match="no usable CUDA GPU"):
        fc.sigmoid_derivative_(np.ones(3))
    assert fc.cuda_status().startswith("not available: no CUDA GPU found")


def test_cuda_status_is_one_line_and_never_raises(monkeypatch):
    status = fc.cuda_status()
    assert isinstance(status, str) and "\n" not in status
    assert status.startswith("simulator" if SIMULATED else ("usable", "not usable", "not available"))

    def broken():
        raise OSError("driver exploded\nwith details")

    monkeypatch.setattr(fc, "_status", broken)
    assert fc.cuda_status() == "unknown: OSError: driver exploded with details"


def test_importing_fastsig_does_not_import_numba_cuda():
    code = "import sys, fastsig, fastsig.cuda; print(any(m == 'numba.cuda' or m.startswith(('numba.cuda.', 'numba_cuda.')) for m in sys.modules))"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "False"


# --------------------------------------------------------------------------
# the real CUDA target: PTX, and accuracy on a device
# --------------------------------------------------------------------------
_PTX_SCRIPT = textwrap.dedent(
    r"""
    import json, math, re, sys
    import fastsig.cuda as fc
    try:
        ptx = fc._ptx((9, 0))
    except Exception as exc:
        if type(exc).__name__ in ("NvvmSupportError", "NvrtcSupportError", "DynamicLibNotFoundError", "CudaSupportError"):
            print(json.dumps({"skip": " ".join(str(exc).split())[:300]}))
            sys.exit(0)
        raise

    # Products the CUDA compiler may fuse with a following sum (NVVM
    # contracts by default, ptxas too) must be exact, i.e. scale by a power
    # of two, or be written with _math.mul, which compiles to the never-fused
    # llvm.nvvm.mul.rn. Checked on numba's IR for each kernel after LLVM's
    # own -O2 (which sees through tuples and negations but, without
    # fast-math flags, fuses nothing itself): the IR as NVVM receives it.
    import llvmlite.binding as llvm
    from numba import types
    from numba.cuda.compiler import compile_cuda

    def optimized(ir):
        module = llvm.parse_assembly(ir)
        machine = llvm.Target.from_default_triple().create_target_machine()
        builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=2))
        builder.getModulePassManager().run(module, builder)
        return str(module)

    # A constant power of two, 2**k built from exponent bits (a bitcast of
    # an integer, float64 or float32), or a select of two such.
    def is_power_of_two(operand, defs):
        if operand.startswith("0x"):
            return int(operand, 16) & ((1 << 52) - 1) == 0
        try:
            return math.frexp(float(operand))[0] in (0.5, -0.5)
        except ValueError:
            pass
        definition = defs.get(operand, "")
        if definition.startswith(("bitcast i64", "bitcast i32")):
            return True
        choice = re.match(r"select (?:\w+ )*i1 [^,]+, (?:double|float) ([^,]+), (?:double|float) (.+)$", definition)
        return bool(choice) and all(is_power_of_two(o.strip(), defs) for o in choice.groups())

    def through_negations(operand, defs):
        while (m := re.match(r"fneg (?:\w+ )*(?:double|float) (.+)$", defs.get(operand, ""))):
            operand = m.group(1).strip()
        return operand

    unsafe = []
    for name in ("sigmoid", "sigmoid_derivative", "sigmoid_and_derivative", "sigmoid_backward"):
        for compute in ("float64", "float32"):
            nargs = 3 if name in ("sigmoid_and_derivative", "sigmoid_backward") else 2
            array = getattr(types, compute)[::1]
            cres = compile_cuda(fc._kernel_source(name, compute), types.void, (array,) * nargs, cc=(9, 0))
            defs = dict(re.findall(r"^\s*(%[\w.$]+) = (.*)$", optimized(cres.library.get_llvm_str()), re.M))
            for definition in defs.values():
                m = re.match(r"(?:fadd|fsub) (?:\w+ )*(?:double|float) ([^,]+), (.+)$", definition)
                for operand in (m.groups() if m else ()):
                    operand = through_negations(operand.strip(), defs)
                    product = re.match(r"fmul (?:\w+ )*(?:double|float) ([^,]+), (.+)$", defs.get(operand, ""))
                    if product and not any(is_power_of_two(o.strip(), defs) for o in product.groups()):
                        unsafe.append(f"{name}[{compute}]: {operand} = {defs[operand]} feeds {definition}")

    print(json.dumps({
        "ptx": {k: {"entry": ".entry" in v, "fma": v.count("fma.rn.f64"), "mul_rn": v.count("mul.rn.f64"),
                    "cvt_f16": v.count("cvt.rn.f16.f64"), "calls": len(re.findall(r"\bcall", v))} for k, v in ptx.items()},
        "unsafe": unsafe,
    }))
    """
)


@pytest.fixture(scope="session", autouse=True)
def ptx_process(request):
    """The PTX check's subprocess, started with the session when that test
    was collected: its NVVM compiles (about 20 s) overlap the other tests."""
    if not any(item.name == "test_kernels_compile_to_ptx_for_the_real_target" for item in request.session.items):
        yield None
        return
    # The check needs the real compiler, which the simulator replaces.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    process = subprocess.Popen(
        [sys.executable, "-c", _PTX_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    yield process
    if process.poll() is None:  # the test did not run (-x, interrupted): end the one process we started
        process.kill()
        process.communicate()


def test_kernels_compile_to_ptx_for_the_real_target(ptx_process):
    """Every kernel through NVVM for sm_90, without a GPU: the shared math's
    intrinsics (fma, select, bitcasts, mul) must be accepted by the CUDA
    target, and no product may be left for the compiler to fuse."""
    stdout, stderr = ptx_process.communicate(timeout=300)
    assert ptx_process.returncode == 0, stderr[-3000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip(f"NVVM/NVRTC not found, PTX not compiled (pip install 'numba-cuda[cu13]'): {report['skip']}")
    ptx = report["ptx"]
    assert len(ptx) == 12 and all(k["entry"] for k in ptx.values())
    assert all(k["calls"] == 0 for k in ptx.values())  # everything inlined, no libdevice or runtime calls
    for name in ("sigmoid", "sigmoid_derivative", "sigmoid_and_derivative"):
        for element in ("float64", "float32", "float16"):
            stats = ptx[f"{name}[{element}]"]
            assert stats["fma"] > 0 and stats["mul_rn"] > 0, (name, element, stats)
        assert ptx[f"{name}[float16]"]["cvt_f16"] > 0
    assert report["unsafe"] == []


@pytest.mark.skipif(SIMULATED, reason="the simulator runs the CPU's code: accuracy is measured on a real GPU")
@pytest.mark.parametrize(("dtype", "max_ulp"), [(np.float64, 1.0), (np.float32, 2.0)])
@pytest.mark.parametrize("name", UNARY)
def test_accuracy_on_the_device(cuda, name, dtype, max_ulp):
    x = accuracy.sample(dtype, 4000, seed=11)
    result = host(getattr(fc, name)(cuda.to_device(x)))
    errors, _ = accuracy.ulp_errors(result, x, name)
    assert errors.max() <= max_ulp
    many = accuracy.sample(dtype, 1_000_000, seed=12)
    assert matches_cpu(host(getattr(fc, name)(cuda.to_device(many))), getattr(fastsig, name)(many))
