"""Import the definitions of a notebook as a module, so tests can compare them with the package.

A thin wrapper over :func:`llms_from_scratch.utils.import_definitions_from_notebook`, the one implementation:
only top-level imports, functions, classes and UPPER_CASE constants run, so the notebook's experiments
(training runs, downloads, prints) are skipped and importing is fast and has no side effects.
"""

from __future__ import annotations

import types
from pathlib import Path

from llms_from_scratch.utils import import_definitions_from_notebook


def load_notebook_definitions(path: str | Path, name: str | None = None) -> types.ModuleType:
    """Return a module holding the notebook's definitions; later cells override earlier ones, as in Jupyter."""
    module = import_definitions_from_notebook(path)
    if name is not None:
        module.__name__ = name
    return module
