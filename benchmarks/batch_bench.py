"""``fastsig apply`` on a .npy file against a chunked copy of it, and its peak memory.

    PYTHONPATH=. python benchmarks/batch_bench.py [--size 1e8] [--dtype float32] [--chunk-mb 4]

Writes an input .npy of ``--size`` elements (normal values, written a chunk
at a time) in ``--dir``, reads it once so that it is in the page cache, then
times, interleaved, ``--repeats`` times each:

* copy:    a chunked copy, ``readinto`` a buffer of ``--chunk-mb`` and
           ``write`` it, to a new file;
* sigmoid: ``fastsig.batch.apply(in, out, "sigmoid")``, same chunk size;
* both:    ``fastsig.batch.apply(in, (s, ds), "both")``, two outputs;

with ``os.sync()`` before each run, so that no run pays for the write-back
of another's dirty pages. Prints the best and the median time of each and
the ratios sigmoid/copy and both/sigmoid; then the peak RSS of
``fastsig apply`` in a child process (its VmHWM), on this file and on a file
of one chunk. Needs 4× the input's size of free disk space in ``--dir``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from fastsig import batch
from fastsig.peak_memory import apply_peak_rss_mib


def write_input(path: Path, size: int, dtype: np.dtype, chunk: int) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(size,))
    rng = np.random.default_rng(0)
    step = max(1, chunk // dtype.itemsize)
    for start in range(0, size, step):
        stop = min(size, start + step)
        out[start:stop] = rng.standard_normal(stop - start, dtype=np.float64) * 8
    out.flush()
    del out


def chunked_copy(source: Path, destination: Path, chunk: int) -> None:
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    with open(source, "rb", buffering=0) as f, open(destination, "wb", buffering=0) as g:
        while n := f.readinto(buffer):
            g.write(view[:n])


def read_all(path: Path, chunk: int) -> None:
    with open(path, "rb", buffering=0) as f:
        buffer = bytearray(chunk)
        while f.readinto(buffer):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=1e8, help="elements (default 1e8)")
    parser.add_argument("--dtype", default="float32", choices=("float16", "float32", "float64"))
    parser.add_argument("--chunk-mb", type=float, default=batch.DEFAULT_CHUNK_BYTES / 2**20)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="threads for fastsig (default: all)")
    parser.add_argument("--dir", default=None, help="where the files go (default: the system's temp dir)")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak memory runs")
    args = parser.parse_args()

    size, dtype = int(args.size), np.dtype(args.dtype)
    chunk = int(args.chunk_mb * 2**20)
    nbytes = size * dtype.itemsize
    work = Path(tempfile.mkdtemp(prefix="fastsig-bench-", dir=args.dir))
    free = shutil.disk_usage(work).free
    if free < 4.2 * nbytes:
        shutil.rmtree(work)
        raise SystemExit(f"needs {4.2 * nbytes / 1e9:.1f} GB free in {work.parent}, has {free / 1e9:.1f} GB")
    try:
        src = work / "in.npy"
        write_input(src, size, dtype, chunk)
        tiny = work / "tiny.npy"
        np.save(tiny, np.ones(1000, dtype))
        for op, out in (("sigmoid", work / "w.npy"), ("both", (work / "w1.npy", work / "w2.npy"))):
            batch.apply(tiny, out, op, threads=args.threads, progress=False)  # compile first
        read_all(src, chunk)  # into the page cache

        runs = {
            "copy": lambda: chunked_copy(src, work / "copy.npy", chunk),
            "sigmoid": lambda: batch.apply(src, work / "s.npy", "sigmoid", chunk_bytes=chunk,
                                           threads=args.threads, progress=False),
            "both": lambda: batch.apply(src, (work / "s2.npy", work / "ds2.npy"), "both", chunk_bytes=chunk,
                                        threads=args.threads, progress=False),
        }
        outputs = {"copy": ["copy.npy"], "sigmoid": ["s.npy"], "both": ["s2.npy", "ds2.npy"]}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                for f in outputs[name]:  # a new file each time, as the first run writes
                    (work / f).unlink(missing_ok=True)
                os.sync()
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        best = {name: min(t) for name, t in times.items()}
        median = {name: statistics.median(t) for name, t in times.items()}

        mb = nbytes / 1e6
        print(f"fastsig apply, {size:.3g} {dtype} .npy -> .npy ({mb:.0f} MB), chunks of {args.chunk_mb:g} MiB, "
              f"page cache warm, {args.repeats} runs each; {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores")
        print(f"{'run':<10}{'best s':>8}{'MB/s in':>9}{'ratio':>8}{'':10}{'median s':>9}{'ratio':>7}")
        for name, ref in (("copy", "copy"), ("sigmoid", "copy"), ("both", "sigmoid")):
            print(f"{name:<10}{best[name]:8.3f}{mb / best[name]:9.0f}{best[name] / best[ref]:8.2f}"
                  + (f"{'':10}" if name == ref else f"{'× ' + ref:>10}")
                  + f"{median[name]:9.3f}{median[name] / median[ref]:7.2f}")

        if not args.no_rss and os.path.exists("/proc/self/status"):
            common = ["--chunk-mb", str(args.chunk_mb)] + (["--threads", str(args.threads)] if args.threads else [])
            one_chunk = work / "one.npy"
            write_input(one_chunk, max(1, chunk // dtype.itemsize), dtype, chunk)
            print("peak RSS of `fastsig apply` (child process, VmHWM):")
            for op, outs in (("sigmoid", ["r.npy"]), ("both", ["r1.npy", "r2.npy"])):
                small = apply_peak_rss_mib([str(one_chunk), *[str(work / o) for o in outs], "--op", op, *common, "--quiet"])
                large = apply_peak_rss_mib([str(src), *[str(work / o) for o in outs], "--op", op, *common, "--quiet"])
                print(f"  --op {op:<8} {large:6.0f} MiB for {mb:.0f} MB, {small:6.0f} MiB for one chunk: "
                      f"+{large - small:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
