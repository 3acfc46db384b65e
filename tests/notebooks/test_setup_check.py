"""The setup check script runs as a reader would run it and reports this machine correctly."""

import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "setup" / "check_env.py"


def test_check_env_script_passes_here():
    result = subprocess.run([sys.executable, str(SCRIPT), "--test"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "[OK  ] torch" in out and torch.__version__ in out
    assert f"Python: {sys.version.split()[0]}" in out
    assert "Device: " in out
    assert out.rstrip().endswith("All checks passed.")


def test_check_env_script_fails_without_the_package(tmp_path):
    # A bare interpreter with no site-packages cannot import torch: the check must say FAIL and exit 1.
    result = subprocess.run([sys.executable, "-S", "-I", str(SCRIPT)], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[FAIL] torch" in result.stdout
    assert "check(s) failed" in result.stdout
