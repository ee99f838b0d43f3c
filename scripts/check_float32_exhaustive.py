"""Every float32 input: max ulp error and share of correctly rounded results.

Usage: python scripts/check_float32_exhaustive.py [--chunk-bits 24] [--sample N]

All 2**32 bit patterns take a few minutes per function on 2 cores; --sample N
checks N random patterns instead (what the test suite does).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import time

import numpy as np

from fastsig.accuracy import float32_check


def _chunk(args: tuple[int, int]) -> dict:
    start, size = args
    return float32_check(np.arange(start, start + size, dtype=np.uint64).astype(np.uint32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk-bits", type=int, default=24)
    parser.add_argument("--sample", type=int, default=0, help="check this many random patterns instead of all")
    args = parser.parse_args()
    begin = time.perf_counter()
    if args.sample:
        bits = np.random.default_rng(0).integers(0, 2**32, args.sample, dtype=np.uint64).astype(np.uint32)
        results = [float32_check(bits)]
    else:
        size = 1 << args.chunk_bits
        jobs = [(start, size) for start in range(0, 1 << 32, size)]
        results = []
        with concurrent.futures.ProcessPoolExecutor(os.cpu_count()) as pool:
            for i, stats in enumerate(pool.map(_chunk, jobs), 1):
                results.append(stats)
                print(f"\r{i}/{len(jobs)} chunks", end="", flush=True)
        print()
    for func in ("sigmoid", "sigmoid_derivative"):
        points = sum(r[func][2] for r in results)
        max_ulp = max(r[func][0] for r in results)
        exact = sum(r[func][1] * r[func][2] for r in results) / points
        print(f"float32 {func:19} {points:>11,} finite inputs: max {max_ulp:.3f} ulp, {exact:.6%} correctly rounded")
    print(f"({time.perf_counter() - begin:.0f} s)")


if __name__ == "__main__":
    main()
