"""fastsig.cuda throughput on a real GPU, against a device-to-device copy,
torch.sigmoid and CuPy's expit (each where installed).

    python benchmarks/cuda_bench.py                       # 1e6 ... 1e9, float32 and float64
    python benchmarks/cuda_bench.py --sizes 1e6,1e7 --ops sigmoid,sigmoid_backward --json out.json

Every array lives on the device; only GPU time is measured, with CUDA
events around ``--repeat`` back-to-back calls after a warm-up call (which
also compiles). Two fastsig figures are given:

* ``call``: the public function with ``out=`` (argument checks, launch),
  what a user sees, where Python overhead dominates small arrays;
* ``kernel``: the compiled kernel launched directly on flat arrays.

Bandwidth counts the bytes an operation must move (each input read once,
each output written once), as the copy's does (read + write), so "% copy"
is the share of the device's practical memory bandwidth reached. Without a
GPU (or under the CUDA simulator) the script says so and exits with 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any, Callable

import numpy as np

# bytes moved per element, in units of the itemsize: (inputs read, outputs written)
TRAFFIC = {"sigmoid": (1, 1), "sigmoid_derivative": (1, 1), "sigmoid_and_derivative": (1, 2), "sigmoid_backward": (2, 1)}
DEFAULT_SIZES = "1e6,1e7,1e8,1e9"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"comma-separated element counts (default {DEFAULT_SIZES})")
    p.add_argument("--dtypes", default="float32,float64", help="comma-separated (default float32,float64)")
    p.add_argument("--ops", default="sigmoid,sigmoid_derivative", help=f"comma-separated, from {', '.join(TRAFFIC)}")
    p.add_argument("--repeat", type=int, default=20, help="timed calls per measurement (default 20)")
    p.add_argument("--rounds", type=int, default=5, help="measurements per case; the median is reported (default 5)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    return p.parse_args(argv)


def gpu_time(cuda: Any, fn: Callable[[], Any], repeat: int, rounds: int) -> float:
    """Median seconds per call of fn, from CUDA events on the default stream."""
    fn()  # warm-up: compiles on first use, faults pages in
    cuda.synchronize()
    times = []
    for _ in range(rounds):
        start, end = cuda.event(), cuda.event()
        start.record()
        for _ in range(repeat):
            fn()
        end.record()
        end.synchronize()
        times.append(cuda.event_elapsed_time(start, end) / 1e3 / repeat)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import fastsig.cuda as fc

    status = fc.cuda_status()
    if not status.startswith("usable"):
        print(f"cuda_bench: no GPU to benchmark: {status}")
        return 0
    cuda = fc._require("sigmoid")
    torch, cupy_expit = _peers()
    print(f"fastsig.cuda: {status}")
    if torch is not None:
        print(f"torch {torch.__version__}")
    if cupy_expit is not None:
        print(f"cupy {sys.modules['cupy'].__version__} (cupyx.scipy.special.expit)")

    sizes = [int(float(s)) for s in args.sizes.split(",")]
    dtypes = [np.dtype(d) for d in args.dtypes.split(",")]
    ops = args.ops.split(",")
    rows = []
    header = f"{'op':24} {'dtype':8} {'size':>6} {'impl':16} {'time':>10} {'GB/s':>8} {'% copy':>7}"
    print(header)
    print("-" * len(header))
    for dtype in dtypes:
        for n in sizes:
            free, _ = cuda.current_context().get_memory_info()
            # the largest case holds 3 operands of fastsig plus, at most, 3 of a peer at a time
            if 6 * n * dtype.itemsize > 0.9 * free:
                print(f"{'(all)':24} {dtype.name:8} {n:>6.0e} skipped: needs {6 * n * dtype.itemsize / 1e9:.1f} GB, {free / 1e9:.1f} GB free")
                continue
            x = cuda.to_device(np.random.default_rng(0).uniform(-20, 20, n).astype(dtype))
            copy_out = cuda.device_array(n, dtype)
            copy_time = gpu_time(cuda, lambda: copy_out.copy_to_device(x), args.repeat, args.rounds)
            copy_gbs = 2 * n * dtype.itemsize / copy_time / 1e9
            rows.append(_row("copy", dtype, n, "device copy", copy_time, copy_gbs, copy_gbs))
            for op in ops:
                rows.extend(_bench_op(cuda, fc, op, dtype, n, x, copy_gbs, args, torch, cupy_expit))
            del x, copy_out
            _free(torch)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": status, "rows": rows}, f, indent=1)
    return 0


def _bench_op(cuda, fc, op, dtype, n, x, copy_gbs, args, torch, cupy_expit) -> list[dict]:
    reads, writes = TRAFFIC[op]
    nbytes = (reads + writes) * n * dtype.itemsize
    inputs = [x] if reads == 1 else [cuda.to_device(np.random.default_rng(1).uniform(-1, 1, n).astype(dtype)), fc.sigmoid(x)]
    outs = tuple(cuda.device_array(n, dtype) for _ in range(writes))
    out = outs if writes > 1 else outs[0]
    fn = getattr(fc, op)
    rows = []

    def add(impl: str, seconds: float) -> None:
        rows.append(_row(op, dtype, n, impl, seconds, nbytes / seconds / 1e9, copy_gbs))

    add("fastsig call", gpu_time(cuda, lambda: fn(*inputs, out=out), args.repeat, args.rounds))
    add("fastsig kernel", gpu_time(cuda, lambda: fc._launch(cuda, op, dtype, 0, *inputs, *outs), args.repeat, args.rounds))
    if torch is not None and op in ("sigmoid", "sigmoid_backward"):
        t_in = [torch.as_tensor(a, device="cuda") for a in inputs]  # zero-copy views of the same memory
        t_out = torch.empty_like(t_in[0])
        if op == "sigmoid":
            add("torch.sigmoid", gpu_time(cuda, lambda: torch.sigmoid(t_in[0], out=t_out), args.repeat, args.rounds))
        else:
            backward = torch.ops.aten.sigmoid_backward.grad_input  # the out= overload
            add("torch backward", gpu_time(cuda, lambda: backward(*t_in, grad_input=t_out), args.repeat, args.rounds))
    if cupy_expit is not None and op == "sigmoid":
        cupy = sys.modules["cupy"]
        c_in, c_out = cupy.asarray(x), cupy.empty(n, dtype)
        add("cupy expit", gpu_time(cuda, lambda: cupy_expit(c_in, out=c_out), args.repeat, args.rounds))
    return rows


def _row(op: str, dtype: np.dtype, n: int, impl: str, seconds: float, gbs: float, copy_gbs: float) -> dict:
    row = {"op": op, "dtype": dtype.name, "size": n, "impl": impl, "seconds": seconds, "GB/s": gbs, "% copy": 100 * gbs / copy_gbs}
    print(f"{op:24} {dtype.name:8} {n:>6.0e} {impl:16} {seconds * 1e6:>8.1f}us {gbs:>8.1f} {row['% copy']:>6.1f}%", flush=True)
    return row


def _peers() -> tuple[Any, Any]:
    """torch (with CUDA) and cupyx.scipy.special.expit, each None where missing."""
    torch = expit = None
    try:
        import torch as _torch

        torch = _torch if _torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - a broken install is as good as none here
        pass
    try:
        from cupyx.scipy.special import expit
    except Exception:  # noqa: BLE001
        pass
    return torch, expit


def _free(torch: Any) -> None:
    import gc

    gc.collect()
    if torch is not None:
        torch.cuda.empty_cache()
    if "cupy" in sys.modules:
        sys.modules["cupy"].get_default_memory_pool().free_all_blocks()


if __name__ == "__main__":
    sys.exit(main())
