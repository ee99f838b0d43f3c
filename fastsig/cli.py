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


# One entry per subcommand, in the order `fastsig --help` lists them.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_check,
    _add_info,
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
