"""How commands report failure: exit status 2 for a wrong command line, 1 for anything that goes wrong later.

* a wrong option value or combination is a usage error: raise :class:`UsageError` (or let argparse reject the
  value through a ``type=`` check, such as the ones below); ``main`` hands it to the command's ``parser.error``,
  which :class:`CommandParser` turns into one line on stderr (``llms-from-scratch CMD: error: ...``) and exit
  status 2;
* a failure while running (a missing file, an unknown model, a download that cannot be had) is raised as
  :class:`CommandError` or one of :data:`RUNTIME_ERRORS`; ``main`` prints ``error: <message>`` on stderr as one
  line, with no traceback, and returns 1.

Values are checked where they are parsed, so that a wrong one is reported before any model is loaded.
Standard library only, so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
import pickle
import re
import sys
from typing import NoReturn


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line naming the problem and where help is (no usage block);
    sub-command parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {one_line(message)} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


class UsageError(Exception):
    """The command line asks for something impossible (reported like argparse's own errors, status 2)."""


class CommandError(Exception):
    """A command failed for a reason its message explains (status 1)."""


# what library code raises for conditions a user can fix (bad files, unknown names, missing downloads, devices,
# a checkpoint that torch.load(weights_only=True) refuses); anything else (TypeError, AttributeError, ...) is a
# bug and keeps its traceback
RUNTIME_ERRORS: tuple[type[Exception], ...] = (
    CommandError, OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError)


def one_line(text: str) -> str:
    """``text`` with its line breaks, tabs and terminal colour codes folded into single spaces."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


def error_message(exc: BaseException) -> str:
    """The message of ``exc`` as a user should read it, on one line (a ``KeyError`` without the quotes ``str``
    adds; a pickle that ``torch.load`` refused as :func:`refused_pickle` words it)."""
    if isinstance(exc, pickle.UnpicklingError):
        return refused_pickle(exc)
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return one_line(str(text)) or type(exc).__name__


def refused_pickle(exc: pickle.UnpicklingError) -> str:
    """What ``torch.load(..., weights_only=True)`` refused and what to do, in one line instead of torch's page."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    what = f"a Python object ({found.group(1)})" if found else "Python objects"
    return (f"the checkpoint holds {what} besides tensors, and loading it could run arbitrary code, so it was "
            "refused; use a file that holds only tensors (a state dict, or a checkpoint written by this package)")


def _number(text: str, kind: type, what: str) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer of at least 1."""
    value = _number(text, int, "a whole number of at least 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse ``type=``: an integer of at least 0."""
    value = _number(text, int, "a whole number of at least 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite number above 0 (a learning rate, a timeout, a scale)."""
    value = _number(text, float, "a number above 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


# the seeds torch accepts (int64's minimum to uint64's maximum); larger ones fail deep inside torch.manual_seed
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1


def random_seed(text: str) -> int:
    """argparse ``type=``: a random seed torch accepts."""
    value = _number(text, int, "a whole number")
    if not SEED_MIN <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be from -2**63 to 2**64 - 1, got {value}")
    return value
