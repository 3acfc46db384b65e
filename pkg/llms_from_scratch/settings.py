"""Run-wide switches the notebooks and scripts share.

Quick mode (``LLMS_QUICK=1``) shrinks data, model sizes and epochs so that every notebook runs top to
bottom in about two minutes on two CPU cores; without it the notebooks reproduce the book-scale runs.
A notebook reads it in one line::

    QUICK = quick_mode()          # prints which mode runs and how to switch
    num_epochs = pick(quick=1, full=10)
"""

from __future__ import annotations

import os
from typing import TypeVar

QUICK_ENV = "LLMS_QUICK"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

T = TypeVar("T")


def is_quick() -> bool:
    """True when ``$LLMS_QUICK`` is set to a true value (1/true/yes/on); unknown values are an error."""
    value = os.environ.get(QUICK_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{QUICK_ENV}={os.environ[QUICK_ENV]!r} is not understood; use {QUICK_ENV}=1 or {QUICK_ENV}=0")


def quick_mode(verbose: bool = True) -> bool:
    """Return whether quick mode is on and, unless ``verbose=False``, say so in one line."""
    quick = is_quick()
    if verbose:
        if quick:
            print(f"Quick mode ({QUICK_ENV}=1): small data, model and epochs; numbers will differ from the book.")
        else:
            print(f"Full mode: book-scale data, model and epochs (set {QUICK_ENV}=1 for a two-minute run).")
    return quick


def pick(*, quick: T, full: T) -> T:
    """Return ``quick`` in quick mode and ``full`` otherwise."""
    return quick if is_quick() else full
