"""Quick mode, the device helper, the environment check and the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from llms_from_scratch import envcheck
from llms_from_scratch.cli import main
from llms_from_scratch.device import describe_device, pick_device
from llms_from_scratch.settings import is_quick, pick, quick_mode


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("0", False), ("", False), ("off", False)])
def test_quick_mode_values(monkeypatch, value, expected):
    monkeypatch.setenv("LLMS_QUICK", value)
    assert is_quick() is expected
    assert pick(quick="small", full="large") == ("small" if expected else "large")


def test_quick_mode_says_which_mode_runs(monkeypatch, capsys):
    monkeypatch.setenv("LLMS_QUICK", "1")
    assert quick_mode() is True
    assert capsys.readouterr().out.startswith("Quick mode (LLMS_QUICK=1)")
    monkeypatch.delenv("LLMS_QUICK")
    assert quick_mode() is False
    assert capsys.readouterr().out.startswith("Full mode")


def test_quick_mode_rejects_unclear_values(monkeypatch):
    monkeypatch.setenv("LLMS_QUICK", "maybe")
    with pytest.raises(ValueError, match="LLMS_QUICK='maybe' is not understood"):
        is_quick()


def test_device_helper_matches_what_torch_reports():
    device, dtype = pick_device(verbose=False)
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif torch.backends.mps.is_available():
        assert device.type == "mps"
    else:
        assert (device.type, dtype) == ("cpu", torch.float32)
        assert "no CUDA or MPS GPU found" in describe_device()
    torch.zeros(2, device=device, dtype=dtype)  # the pair is usable


@pytest.mark.parametrize(
    ("installed", "spec", "ok"),
    [("2.13.0+cpu", ">=2.2", True), ("2.1.2", ">=2.2", False), ("0.14.0", ">=0.5,<1", True),
     ("1.24", "==1.24.0", True), ("4.70.1", "~=4.64", True), ("5.0", "~=4.64", False), ("3.0", "", True)],
)
def test_version_comparison(installed, spec, ok):
    assert envcheck._satisfies(installed, spec) is ok


def test_environment_check_reports_this_machine():
    lines = []
    failures = envcheck.report(("notebooks", "test"), out=lines.append)
    text = "\n".join(lines)
    assert failures == 0, text
    assert f"installed {torch.__version__}" in text
    assert f"Python: {sys.version.split()[0]}" in text
    assert describe_device() in text
    assert text.endswith("All checks passed.")


def test_environment_check_flags_a_missing_package(monkeypatch):
    monkeypatch.setattr(envcheck, "requirements", lambda groups: [("surely-not-installed-pkg", ">=1.0")])
    lines = []
    assert envcheck.report(out=lines.append) == 1
    assert any(line.startswith("[FAIL] surely-not-installed-pkg") and "missing" in line for line in lines)


def test_cli_help_runs_as_a_console_script():
    result = subprocess.run([sys.executable, "-m", "llms_from_scratch.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: llms-from-scratch" in result.stdout
    for command in ("env", "data"):
        assert command in result.stdout


def test_cli_data_list(capsys):
    assert main(["data", "list"]) == 0
    assert "the-verdict" in capsys.readouterr().out


def test_cli_data_fetch_unknown_name_fails_clearly(capsys):
    assert main(["data", "fetch", "no-such-asset"]) == 1
    assert "unknown asset 'no-such-asset'" in capsys.readouterr().err


def test_runtime_dependencies_stay_lean():
    """No test tool, notebook tool, TensorFlow or pip is needed to import and run the package."""
    from importlib.metadata import requires

    runtime = [r.split(";")[0] for r in requires("llms-from-scratch") if "extra ==" not in r]
    names = {envcheck._REQ.match(r).group(1).lower() for r in runtime}
    forbidden = {"pytest", "nbval", "hypothesis", "ruff", "tensorflow", "pip", "jupyterlab", "pandas", "matplotlib"}
    assert not names & forbidden, f"runtime dependencies must stay lean, found {sorted(names & forbidden)}"
    assert "torch" in names
