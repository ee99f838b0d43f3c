"""The ``fastsig`` command: a thin shell over the library.

Each subcommand parses its options here and calls one library function;
no computing happens in this module.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="accuracy of fastsig and the NumPy baseline against a 200-bit reference")
    p.add_argument("--points", type=int, default=20_000, help="sample points per dtype (default 20000)")
    p.add_argument("--seed", type=int, default=0)

    def run(args: argparse.Namespace) -> int:
        from .accuracy import check_report

        print(check_report(points=args.points, seed=args.seed))
        return 0

    p.set_defaults(run=run)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="versions, threads, and whether a CUDA GPU is usable")

    def run(args: argparse.Namespace) -> int:
        from .info import info_report

        print(info_report())
        return 0

    p.set_defaults(run=run)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from .comparisons import DTYPES, OPERATIONS, PEERS

    p = sub.add_parser(
        "bench",
        help="time fastsig against the NumPy baseline, SciPy, numexpr and torch (those installed)",
        description="Time fastsig against the NumPy baseline and each installed peer, side by side in "
        "this process, and print ns/element, speed-ups and max ulp per operation, dtype and size.",
    )
    p.add_argument("--ops", nargs="+", choices=OPERATIONS, metavar="OP",
                   help=f"operations (default: all; quick: sigmoid): {', '.join(OPERATIONS)}")
    p.add_argument("--dtypes", nargs="+", choices=("float16", "float32", "float64"), metavar="DTYPE",
                   help=f"float16, float32, float64 (default: {' '.join(DTYPES)})")
    p.add_argument("--sizes", nargs="+", metavar="N",
                   help="array sizes, such as 1e3 100000 (default: 1e1 ... 1e7; quick: 1e3 1e5 1e7)")
    p.add_argument("--peers", nargs="+", choices=PEERS, metavar="PEER",
                   help=f"peers to include when installed (default: all of {', '.join(PEERS)})")
    p.add_argument("--no-peers", action="store_true", help="fastsig and the baseline only")
    p.add_argument("--quick", action="store_true", help="sigmoid, float32 and float64, sizes 1e3 1e5 1e7, short timings")
    p.add_argument("--repeats", type=int, help="timed loops per implementation, the best counts (default 5; quick 3)")
    p.add_argument("--min-time", type=float, metavar="SECONDS",
                   help="length of one timed loop (default 0.01; quick 0.002)")
    p.add_argument("--plot", metavar="FILE.png", help="also plot throughput against size (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    def run(args: argparse.Namespace) -> int:
        from . import bench

        preset = bench.QUICK if args.quick else {}
        try:
            sizes = [bench.parse_size(s) for s in args.sizes] if args.sizes else preset.get("sizes", bench.SIZES)
        except ValueError as error:
            p.error(str(error))
        try:
            report = bench.bench_report(
                ops=args.ops or preset.get("ops", OPERATIONS),
                dtypes=args.dtypes or preset.get("dtypes", DTYPES),
                sizes=sizes,
                peers=() if args.no_peers else args.peers,
                min_time=args.min_time if args.min_time is not None else preset.get("min_time", 0.01),
                repeats=args.repeats if args.repeats is not None else preset.get("repeats", 5),
                progress=not args.no_progress,
                plot_path=args.plot,
            )
        except ImportError as error:  # --plot without matplotlib
            print(f"fastsig bench: {error}", file=sys.stderr)
            return 1
        print(report)
        if args.plot:
            print(f"plot: {args.plot}")
        return 0

    p.set_defaults(run=run)


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw σ and σ' on [-6, 6] to a PNG (needs matplotlib)")
    p.add_argument("file", metavar="FILE.png", help="where to save the figure")
    p.add_argument("--dpi", type=int, default=100, help="resolution (default 100: 900×500 pixels)")

    def run(args: argparse.Namespace) -> int:
        from .plot import plot_sigmoid

        try:
            plot_sigmoid(args.file, dpi=args.dpi)
        except ImportError as error:
            print(f"fastsig plot: {error}", file=sys.stderr)
            return 1
        print(f"plot: {args.file}")
        return 0

    p.set_defaults(run=run)


def _add_apply(sub: argparse._SubParsersAction) -> None:
    from .batch import DEFAULT_CHUNK_BYTES, OPS

    p = sub.add_parser(
        "apply",
        help="apply σ, σ' or both to an array file of any size (.npy, HDF5, zarr)",
        description="Stream IN through σ, σ' or both, a chunk at a time, into OUT (written beside it "
        "and renamed into place when complete). IN and OUT: X.npy, X.h5[:/DATASET], X.zarr[:/ARRAY].",
    )
    p.add_argument("input", metavar="IN", help="the input array")
    p.add_argument("outputs", metavar="OUT", nargs="*",
                   help="the output (two with --op both: σ, then σ'; none with --in-place)")
    p.add_argument("--op", choices=tuple(OPS), default="sigmoid", help="what to compute (default sigmoid)")
    def megabytes(text: str) -> float:
        value = float(text)
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
        return value

    p.add_argument("--chunk-mb", type=megabytes, metavar="N", default=DEFAULT_CHUNK_BYTES / 2**20,
                   help=f"MiB per chunk and array (default {DEFAULT_CHUNK_BYTES / 2**20:g})")
    p.add_argument("--threads", type=int, metavar="N", help="threads for the arithmetic (default: all cores but one, for the I/O)")
    p.add_argument("--in-place", action="store_true", help="overwrite IN (.npy, float) chunk by chunk: NOT atomic")
    p.add_argument("--fsync", action="store_true", help="flush OUT to disk before renaming it into place")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        from . import batch

        outputs = args.outputs[0] if len(args.outputs) == 1 else tuple(args.outputs) or None
        try:
            batch.apply(args.input, outputs, args.op, chunk_bytes=round(args.chunk_mb * 2**20),
                        progress=False if args.quiet else None, threads=args.threads,
                        in_place=args.in_place, fsync=args.fsync)
        except batch.BatchError as error:
            print(f"fastsig apply: {error}", file=sys.stderr)
            return 1
        return 0

    p.set_defaults(run=run)


# One entry per subcommand, in the order `fastsig --help` lists them.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_check,
    _add_info,
    _add_bench,
    _add_plot,
    _add_apply,
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastsig", description="Fast, accurate logistic sigmoid kernels.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("fastsig: interrupted", file=sys.stderr)
        return 130
