"""The ``llms-from-scratch`` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``, which adds
its parser and sets ``func``. Chapters add subcommands by adding their module name to ``COMMANDS``.
Modules import heavy libraries (torch) inside their functions so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

COMMANDS = (
    "env",
    "data",
    "chat",
    "serve",
    "download",
    "convert",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llms-from-scratch",
        description="Tools from the LLMs-from-scratch book: check the setup, fetch data, train and run models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
