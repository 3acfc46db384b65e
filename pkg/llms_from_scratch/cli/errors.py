"""How commands report failure: exit status 2 for a wrong command line, 1 for anything that goes wrong later.

* a wrong option value or combination is a usage error: raise :class:`UsageError` (or let argparse reject the
  value through a ``type=`` check); ``main`` hands it to the command's ``parser.error``, which prints the usage
  and the message and exits with status 2;
* a failure while running (a missing file, an unknown model, a download that cannot be had) is raised as
  :class:`CommandError` or one of :data:`RUNTIME_ERRORS`; ``main`` prints ``error: <message>`` on stderr, with no
  traceback, and returns 1.

Standard library only, so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """The command line asks for something impossible (reported like argparse's own errors, status 2)."""


class CommandError(Exception):
    """A command failed for a reason its message explains (status 1)."""


# what library code raises for conditions a user can fix (bad files, unknown names, missing downloads, devices);
# anything else (TypeError, AttributeError, ...) is a bug and keeps its traceback
RUNTIME_ERRORS: tuple[type[Exception], ...] = (CommandError, OSError, ValueError, KeyError, RuntimeError)


def error_message(exc: BaseException) -> str:
    """The message of ``exc`` as a user should read it (a ``KeyError`` without the quotes ``str`` adds)."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return str(text) or type(exc).__name__


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse ``type=``: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value
