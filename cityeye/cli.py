"""The `cityeye` command: one subcommand per part, each registered by its own module.

Subcommand modules import their heavy dependencies inside their handlers so that `cityeye --help`
and a camera box without the hub extras stay fast and working.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cityeye import __version__

# Each module defines `register(subparsers) -> None`, setting `func` on its parsers.
COMMAND_MODULES = (
    "cityeye.commands.models",
    "cityeye.commands.edge",
    "cityeye.commands.hub",
    "cityeye.commands.evidence",
    "cityeye.commands.calibrate",
    "cityeye.commands.demo",
    "cityeye.commands.plates",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cityeye",
        description="CityEye: edge agents detect street problems on camera video; the hub turns them "
        "into cases that reviewers confirm, dispatch and close.",
    )
    parser.add_argument("--version", action="version", version=f"cityeye {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module must not be hidden
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
