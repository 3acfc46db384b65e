"""User errors of the real ``llms-from-scratch`` process (issue 15, items 2 and 6): one line on stderr that names
the problem and the fix, no traceback, exit status 2 for a wrong command line and 1 for a failure while running.

Values that need no model are checked while the command line is parsed. The tests prove it without timing: they
point ``-m``/``--checkpoint`` at a file that does not exist, so a check that came after loading would report the
missing file (status 1) instead of the bad value (status 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gguf_files import truncated_copy, write_small_gguf

from llms_from_scratch.cli import main

SCRIPT = Path(sys.executable).with_name("llms-from-scratch")
BIG = str(2**70)


def cli(*argv: object) -> subprocess.CompletedProcess:
    """Run the installed console script (or ``python -m llms_from_scratch.cli`` where there is none)."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "llms_from_scratch.cli"]
    return subprocess.run([*command, *map(str, argv)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def one_line_error(result: subprocess.CompletedProcess, status: int, *fragments: str) -> str:
    """The single stderr line of a run that failed with ``status``; it must contain every fragment."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def usage_error(result: subprocess.CompletedProcess, command: str, *fragments: str) -> str:
    line = one_line_error(result, 2, *fragments)
    assert line.startswith(f"llms-from-scratch {command}: error: ") and f"llms-from-scratch {command} --help" in line
    return line


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory) -> Path:
    return write_small_gguf(tmp_path_factory.mktemp("gguf") / "small.gguf")


# ---- generate: sampling values and --device, before the model loads (item 6) ----

@pytest.mark.parametrize("option, value, message", [
    ("--temperature", "-1", "--temperature must be a finite number >= 0 (0 = greedy), got -1.0"),
    ("--temperature", "nan", "--temperature must be a finite number >= 0 (0 = greedy), got nan"),
    ("--top-k", "0", "argument --top-k: must be at least 1, got 0"),
    ("--top-k", "1.5", "argument --top-k: expected a whole number of at least 1, got '1.5'"),
    ("--top-p", "1.5", "--top-p must be a number in (0, 1], got 1.5"),
    ("--top-p", "nan", "--top-p must be a number in (0, 1], got nan"),
    ("--max-new-tokens", "-1", "argument --max-new-tokens: must be at least 1, got -1"),
    ("--seed", BIG, f"argument --seed: must be from -2**63 to 2**64 - 1, got {BIG}"),
])
def test_generate_refuses_sampling_values_before_loading_the_model(tmp_path, option, value, message):
    result = cli("generate", "-p", "hi", "-m", tmp_path / "absent.gguf", option, value)
    usage_error(result, "generate", message)


@pytest.mark.parametrize("source", [["-m", "absent.gguf"], ["--checkpoint", "absent.pth"]])
def test_generate_checks_the_device_before_loading_the_model(tmp_path, source):
    """Before: `--device foo` failed after the model had loaded (15 s for SmolLM2), with torch's list of twenty
    device types."""
    result = cli("generate", "-p", "hi", source[0], tmp_path / source[1], "--device", "foo")
    usage_error(result, "generate", "argument --device: unknown device 'foo'; use cpu, cuda, cuda:N, mps or auto")


def test_generate_refuses_a_gpu_this_machine_does_not_have(tmp_path):
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    result = cli("generate", "-p", "hi", "-m", tmp_path / "absent.gguf", "--device", "cuda:7")
    line = usage_error(result, "generate", "argument --device: 'cuda:7'")
    assert "none is available" in line or "numbered from 0" in line


# ---- generate and convert: files that cannot be read (item 6) ----

def test_generate_names_a_missing_gguf_file(tmp_path):
    result = cli("generate", "-p", "hi", "-m", tmp_path / "absent.gguf", "--device", "cpu")
    one_line_error(result, 1, f"error: GGUF file {tmp_path / 'absent.gguf'} does not exist: check the path")


def test_generate_names_a_truncated_gguf_file(small_gguf, tmp_path):
    """Before: "When changing to a larger dtype, its size must be a divisor ..." with no file name."""
    cut = truncated_copy(small_gguf, tmp_path / "cut.gguf", 8000)
    result = cli("generate", "-p", "hi", "-m", cut, "--device", "cpu")
    one_line_error(result, 1, f"error: {cut.resolve()} (8,000 bytes) is truncated or damaged",
                   "download the file again")


def test_convert_names_a_truncated_gguf_file(small_gguf, tmp_path):
    cut = truncated_copy(small_gguf, tmp_path / "cut.gguf", 100)
    result = cli("convert", cut, tmp_path / "out")
    one_line_error(result, 1, f"error: {cut.resolve()} (100 bytes) is truncated or damaged")
    assert not (tmp_path / "out").exists()


def test_convert_names_a_file_that_is_not_gguf(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_text("<html>404 Not Found</html>")
    one_line_error(cli("convert", fake, tmp_path / "out"), 1, f"error: {fake.resolve()} is not a GGUF file")


class _RunsCode:
    """Unpickling this calls ``open(marker, "w")``: the file appears if the pickle is executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_generate_refuses_a_pickle_with_code_in_one_line_naming_the_file(tmp_path):
    """Before: torch's twenty-line "Weights only load failed" page and a traceback."""
    marker = tmp_path / "pickle-ran"
    checkpoint = tmp_path / "evil.pth"
    torch.save({"config": _RunsCode(marker), "model_state_dict": {}}, checkpoint)
    line = one_line_error(cli("generate", "-p", "hi", "--checkpoint", checkpoint, "--device", "cpu"), 1,
                          f"error: {checkpoint}: the checkpoint holds a Python object", "was refused")
    assert "open" in line and not marker.exists()


def test_generate_names_a_truncated_checkpoint(tmp_path):
    checkpoint = tmp_path / "cut.pth"
    torch.save({"config": {}, "model_state_dict": {"w": torch.zeros(100)}}, tmp_path / "whole.pth")
    truncated_copy(tmp_path / "whole.pth", checkpoint, 200)
    one_line_error(cli("generate", "-p", "hi", "--checkpoint", checkpoint, "--device", "cpu"), 1,
                   f"error: {checkpoint} is not a readable PyTorch checkpoint (truncated or damaged")


# ---- generate: prompt + --max-new-tokens against the model's context (item 2) ----

def test_generate_refuses_more_new_tokens_than_the_context_holds(tmp_path):
    """Before: --max-new-tokens 1000000000 asked for a KV cache of a billion positions (23 TB for SmolLM2)."""
    from llms_from_scratch.models import build_model, get_config, save_hf_checkpoint

    torch.manual_seed(0)
    model = build_model(get_config("gpt2-124m", emb_dim=16, n_layers=1, n_heads=2, context_length=64))
    save_hf_checkpoint(model, tmp_path / "tiny")
    result = cli("generate", "-p", "Hello", "-m", tmp_path / "tiny", "--device", "cpu", "--no-autotune",
                 "--max-new-tokens", "1000000000")
    usage_error(result, "generate", "a prompt of 1 tokens plus --max-new-tokens 1000000000 makes 1000000001 tokens, "
                                    "more than this model's context of 64: ask for at most 63 new tokens")


# ---- the other commands: values checked while parsing, files named (item 6) ----

@pytest.mark.parametrize("command, argv, message", [
    ("finetune-classifier", ["--lr", "nan"], "argument --lr: expected a finite number, got 'nan'"),
    ("finetune-classifier", ["--lr", "0"], "argument --lr: must be above 0, got 0"),
    ("finetune-classifier", ["--lora-alpha", "-1"], "argument --lora-alpha: must be above 0, got -1"),
    ("finetune-instruct", ["--seed", BIG], "argument --seed: must be from -2**63 to 2**64 - 1"),
    ("finetune-instruct", ["--batch-size", "x"], "argument --batch-size: expected a whole number of at least 1"),
    ("evaluate", ["responses.json", "--timeout", "0"], "argument --timeout: must be above 0, got 0"),
    ("convert", ["a.gguf", "out", "--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
    ("data", [], "the following arguments are required: ACTION"),
    ("data fetch", [], "the following arguments are required: NAME"),
])
def test_other_commands_report_bad_values_in_one_line(command, argv, message):
    usage_error(cli(*command.split(), *argv), command, message)


@pytest.mark.parametrize("content", [5, [], {"output": "x"}])
def test_evaluate_names_a_responses_file_of_the_wrong_shape(tmp_path, content):
    """Before: a JSON number raised TypeError ('int' object is not iterable) with a traceback."""
    responses = tmp_path / "responses.json"
    responses.write_text(json.dumps(content))
    one_line_error(cli("evaluate", responses, "--no-judge"), 1,
                   f"error: {responses} must hold a non-empty JSON list of objects")


def test_convert_names_a_source_that_does_not_exist(tmp_path):
    one_line_error(cli("convert", tmp_path / "absent", tmp_path / "out"), 1,
                   f"error: {tmp_path / 'absent'} does not exist: give a .gguf file, a Meta Llama folder")


def test_ctrl_c_ends_a_command_with_one_line_and_status_130(monkeypatch, capsys):
    import llms_from_scratch.cli.env as env

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(env, "run", interrupted)
    assert main(["env"]) == 130
    assert capsys.readouterr().err == "interrupted\n"
