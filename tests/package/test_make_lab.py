"""`make lab` works as root (issue 15, defect 18): Jupyter then needs --allow-root, which everyone else is spared.

The Makefile is read by ``make -n`` (print the commands, run none) with a stand-in ``id`` first on the PATH, so no
Jupyter starts and the test does not depend on who runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lab_command(tmp_path: Path, uid: int) -> str:
    fake = tmp_path / f"bin-{uid}"
    fake.mkdir()
    (fake / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (fake / "id").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    env.pop("OS", None)
    venv = tmp_path / "venv"  # a venv that does not exist: make -n only prints how it would create it
    result = subprocess.run(["make", "-n", "-C", str(ROOT), "lab", f"VENV={venv}"], capture_output=True, text=True,
                            env=env, timeout=60, check=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(f"{venv}/bin/jupyter lab")]
    assert len(lines) == 1, result.stdout
    return lines[0]


@pytest.mark.skipif(shutil.which("make") is None or os.name == "nt", reason="needs make and a POSIX shell")
def test_lab_adds_allow_root_only_for_root(tmp_path):
    assert lab_command(tmp_path, 0).split()[1:] == ["lab", "--allow-root", "README.md"]
    assert lab_command(tmp_path, 1000).split()[1:] == ["lab", "README.md"]
