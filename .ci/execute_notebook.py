"""Execute notebooks in place and store their outputs, the way the repository keeps them.

    python .ci/execute_notebook.py ch02/01_main-chapter-code/ch02.ipynb [more.ipynb ...] [--quick]

Runs each notebook top to bottom in its own folder (full mode unless --quick), stops at the first error,
and removes widget state so that stored notebooks stay small and diff-able.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path, quick: bool, timeout: int) -> float:
    notebook = nbformat.read(path, as_version=4)
    env_before = os.environ.get("LLMS_QUICK")
    os.environ["LLMS_QUICK"] = "1" if quick else "0"
    start = time.perf_counter()
    try:
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        if env_before is None:
            os.environ.pop("LLMS_QUICK", None)
        else:
            os.environ["LLMS_QUICK"] = env_before
    elapsed = time.perf_counter() - start
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)  # per-cell timestamps only add noise to diffs
    nbformat.validate(notebook)
    nbformat.write(notebook, path)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--quick", action="store_true", help="run with LLMS_QUICK=1")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args()
    for path in args.notebooks:
        elapsed = execute(path, args.quick, args.timeout)
        print(f"{path}: executed in {elapsed:.1f} s ({'quick' if args.quick else 'full'} mode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
