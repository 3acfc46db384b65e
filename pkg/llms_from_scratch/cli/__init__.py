"""The ``llms-from-scratch`` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``, which adds
its parser and sets ``func``. Chapters add subcommands by adding their module name to ``COMMANDS``.
Modules import heavy libraries (torch) inside their functions so that ``--help`` stays fast.

Exit status: 0 on success, 2 for a wrong command line (argparse's ``parser.error``), 1 when a command fails while
running, 130 when interrupted with Ctrl-C; either error is one line on stderr that names the problem and the fix,
with no traceback (see :mod:`.errors`). No library module imports this package.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from .errors import RUNTIME_ERRORS, CommandParser, UsageError, error_message

COMMANDS = (
    "env",
    "data",
    "pretrain",
    "generate",
    "finetune-classifier",
    "finetune-instruct",
    "finetune-reward",
    "rlhf-grpo",
    "rlhf-ppo",
    "evaluate",
    "chat",
    "serve",
    "download",
    "convert",
)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="llms-from-scratch",
        description="Tools from the LLMs-from-scratch book: check the setup, fetch data, train and run models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}").register(subparsers)
        # a usage error found while the command runs is reported with this command's usage line
        subparsers.choices[name].set_defaults(command_parser=subparsers.choices[name])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        args.command_parser.error(str(exc))  # prints the usage and the message, exits with status 2
    except RUNTIME_ERRORS as exc:
        print(f"error: {error_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
