"""Every stored notebook is a clean record of a real top-to-bottom run.

nbval re-executes the notebooks; this test checks what readers see on GitHub before they run anything:
valid nbformat, every code cell executed in order, no error outputs, no paths of the machine that ran it,
and no widget state.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIRS = ["setup", "ch01", "ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "appendix-A", "appendix-D", "appendix-E"]
NOTEBOOKS = sorted(
    p for d in NOTEBOOK_DIRS for p in (ROOT / d).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
)

# Folders whose names would betray the machine a notebook ran on.
_MACHINE_PATHS = re.compile(
    "|".join(re.escape(str(p)) for p in {ROOT, ROOT.parent, Path.home(), Path(tempfile.gettempdir())} if len(str(p)) > 1)
    + r"|/home/\w+/|/Users/\w+/|[A-Z]:\\\\Users\\\\"
)


def _texts(output) -> list[str]:
    if "text" in output:
        return ["".join(output["text"])]
    data = output.get("data", {})
    return ["".join(v) if isinstance(v, list) else str(v) for k, v in data.items() if k.startswith("text/")]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found; the collection pattern is broken"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_stored_from_a_clean_run(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert "widgets" not in notebook.metadata, "widget state is stored: run without tqdm.auto/ipywidgets"

    counts, problems = [], []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if cell.execution_count is None:
            problems.append(f"cell {index} was never executed")
            continue
        counts.append(cell.execution_count)
        for output in cell.outputs:
            if output.output_type == "error":
                problems.append(f"cell {index} stores an error: {output.ename}: {output.evalue}")
            for text in _texts(output):
                match = _MACHINE_PATHS.search(text)
                if match:
                    problems.append(f"cell {index} shows a path of the machine that ran it: {match.group()!r}")
    if counts != list(range(1, len(counts) + 1)):
        problems.append(f"execution counts are not 1, 2, 3, ... in order: {counts}")
    assert not problems, f"{path.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_machine_path_pattern_catches_home_and_temp():
    assert _MACHINE_PATHS.search(f"saved to {Path.home()}/x.txt")
    assert _MACHINE_PATHS.search(f"{tempfile.gettempdir()}/abc")
    assert not _MACHINE_PATHS.search("saved to ch05/model.pth")
    assert os.sep  # the pattern is built from this platform's paths
