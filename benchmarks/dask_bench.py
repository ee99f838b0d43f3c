"""fastsig.dask against the NumPy baseline, side by side on one dask.distributed cluster.

    PYTHONPATH=. python benchmarks/dask_bench.py [--size 2e8] [--chunk 1e7] [--workers 2]

Starts a LocalCluster (``--workers`` processes of one thread, loopback, no
dashboard), draws ``--size`` float32 normal values with dask's random
generator *inside the workers* and persists them there (nothing is
materialised in this process), then times, interleaved and ``--repeats``
times each (the best counts), persisting each result in the workers:

* fastsig.dask.sigmoid(x) against x.map_blocks(fastsig.baseline.sigmoid),
  the textbook 1/(1+np.exp(-x));
* fastsig.dask.sigmoid_and_derivative(x) (one task per block, two outputs)
  against the baseline's s, s*(1-s) from one task per block.

Every method first runs once on a small array, so that worker start-up and
compiling are not timed. Prints seconds, elements/s and GB/s of input.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def _baseline_pair(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Module level, as fastsig.dask's own block functions: pickled by reference.
    from fastsig import baseline

    return baseline.sigmoid_and_derivative(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=2e8, help="float32 elements (default 2e8)")
    parser.add_argument("--chunk", type=float, default=1e7, help="elements per block (default 1e7)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of one thread (default 2)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import fastsig
    import fastsig.dask as fsd
    from fastsig import baseline

    size, chunk = int(args.size), int(args.chunk)
    dtype = np.float32
    meta = np.empty((0,), dtype)

    methods = {
        "fastsig sigmoid": lambda x: (fsd.sigmoid(x),),
        "baseline sigmoid": lambda x: (x.map_blocks(baseline.sigmoid, dtype=dtype, meta=meta),),
        "fastsig both": lambda x: fsd.sigmoid_and_derivative(x),
        "baseline both": lambda x: da.apply_gufunc(_baseline_pair, "()->(),()", x, meta=(meta, meta)),
    }

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0", host="127.0.0.1", silence_logs=40) as cluster, \
            Client(cluster) as client:
        def draw(n: int) -> da.Array:
            x = da.random.default_rng(0).standard_normal(n, chunks=chunk, dtype=dtype) * 8
            x = client.persist(x)
            wait(x)
            return x

        def run(method, x) -> float:
            start = time.perf_counter()
            results = client.persist(list(method(x)))
            wait(results)
            elapsed = time.perf_counter() - start
            client.cancel(results)
            del results
            return elapsed

        small = draw(chunk * args.workers)
        for method in methods.values():  # workers import fastsig and load its kernels
            run(method, small)
        client.cancel(small)

        x = draw(size)
        best = {name: float("inf") for name in methods}
        for _ in range(args.repeats):
            for name, method in methods.items():
                best[name] = min(best[name], run(method, x))

        print(f"fastsig.dask vs NumPy baseline: {size:.3g} float32 in blocks of {chunk:.3g}, "
              f"LocalCluster of {args.workers} processes × 1 thread, best of {args.repeats}; "
              f"{platform.machine()}, {os.cpu_count()} cores, fastsig {fastsig.__version__}")
        print(f"{'method':<18}{'seconds':>9}{'Gelem/s':>9}{'GB/s in':>9}{'speed-up':>10}")
        for name in methods:
            ref = best[name.replace("fastsig", "baseline")]
            print(f"{name:<18}{best[name]:9.3f}{size / best[name] / 1e9:9.2f}"
                  f"{size * 4 / best[name] / 1e9:9.2f}{ref / best[name]:9.2f}×")


if __name__ == "__main__":
    main()
