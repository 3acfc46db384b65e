"""``llms-from-scratch pretrain`` as a careless user or a crash meets it (issue 15, items 4, 6, 11 and 14).

Every test drives the installed command in its own process, on a one-block model 16 wide: the token file that
must follow its corpus (4), user errors that must be one line with the right exit status (6), a checkpoint damaged
on disk (11), and the temporary file of a save cut short by ``kill -9`` (14).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from llms_from_scratch.cli import main
from llms_from_scratch.data import gpt2_encoding, read_text

SCRIPT = Path(sys.executable).with_name("llms-from-scratch")
TINY = ["--context-length", "16", "--emb-dim", "16", "--n-layers", "1", "--n-heads", "2", "--drop-rate", "0",
        "--batch-size", "2", "--eval-interval", "1", "--eval-iters", "1", "--sample-tokens", "2", "--quiet"]


def cli(*argv: object) -> subprocess.CompletedProcess:
    """Run the installed console script (or ``python -m llms_from_scratch.cli`` where there is none)."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "llms_from_scratch.cli"]
    return subprocess.run([*command, *map(str, argv)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def pretrain(data: Path, out_dir: Path, *extra: object) -> subprocess.CompletedProcess:
    return cli("pretrain", "--data", data, "--out-dir", out_dir, *TINY, *extra)


def one_line_error(result: subprocess.CompletedProcess, status: int, *fragments: str) -> str:
    """The single stderr line of a run that failed with ``status``; it must contain every fragment."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def tokens_of(*texts: str) -> list[int]:
    """What tokens.bin must hold for these documents: each one's ids, then <|endoftext|>."""
    tokenizer = gpt2_encoding()
    return [i for text in texts for i in [*tokenizer.encode(text), tokenizer.eot_token]]


@pytest.fixture(scope="module")
def texts() -> tuple[str, str]:
    verdict = read_text("the-verdict")
    return verdict[:6000], verdict[6000:12000]


@pytest.fixture
def corpus(tmp_path, texts) -> Path:
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text(texts[0], encoding="utf-8")
    (folder / "sub" / "b.txt").write_text(texts[1], encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def started(tmp_path_factory, texts) -> tuple[Path, Path]:
    """A corpus and a run stopped after step 1 of 2, copied by the tests that resume it."""
    root = tmp_path_factory.mktemp("started")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(texts[0], encoding="utf-8")
    result = pretrain(corpus, root / "run", "--steps", "2", "--stop-at-step", "1")
    assert result.returncode == 0, result.stderr
    return corpus, root / "run"


@pytest.fixture
def resumable(started, tmp_path) -> tuple[Path, Path]:
    """A private copy of the started run and its corpus (times kept, so the copy is the same corpus)."""
    corpus, run = started
    return shutil.copytree(corpus, tmp_path / "corpus"), shutil.copytree(run, tmp_path / "run")


# ---- 4: the token file follows its corpus ----

def test_item4_other_data_in_the_same_out_dir_is_tokenized_again(tmp_path, texts):
    """Before: the second run trained on the first corpus's tokens.bin without a word."""
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text(texts[0], encoding="utf-8")
    second.write_text(texts[1], encoding="utf-8")
    assert pretrain(first, tmp_path / "run", "--steps", "1").returncode == 0
    result = pretrain(second, tmp_path / "run", "--steps", "1")
    assert result.returncode == 0, result.stderr
    assert np.memmap(tmp_path / "run" / "tokens.bin", dtype=np.uint16, mode="r").tolist() == tokens_of(texts[1])
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    assert [entry["path"] for entry in checkpoint["corpus"]["files"]] == ["second.txt"]


def test_item4_a_changed_file_is_tokenized_again_and_a_touched_one_is_not(corpus, tmp_path, texts):
    from llms_from_scratch.training.token_file import prepare_token_file

    tokenizer, out = gpt2_encoding(), tmp_path / "run" / "tokens.bin"
    record, why = prepare_token_file(corpus, out, tokenizer)
    assert why == "there is no token file yet" and record["n_tokens"] == len(tokens_of(*texts))
    os.utime(corpus / "a.txt")  # a new time, the same bytes
    assert prepare_token_file(corpus, out, tokenizer)[1] is None

    (corpus / "a.txt").write_text(texts[0].upper(), encoding="utf-8")  # the same size, other bytes
    assert prepare_token_file(corpus, out, tokenizer)[1] == "the corpus changed: a.txt changed (same size, " \
                                                            "different content)"
    (corpus / "c.txt").write_text("more text", encoding="utf-8")
    (corpus / "sub" / "b.txt").unlink()
    assert prepare_token_file(corpus, out, tokenizer)[1] == "the corpus changed: sub/b.txt was removed, " \
                                                            "c.txt was added"
    assert np.memmap(out, dtype=np.uint16, mode="r").tolist() == tokens_of(texts[0].upper(), "more text")
    (out.with_suffix(".json")).unlink()  # a token file without its record is never trusted
    assert "no readable record" in prepare_token_file(corpus, out, tokenizer)[1]


def test_item4_resume_refuses_other_or_changed_data(resumable, tmp_path, texts):
    """Before: --resume continued on whatever --data named, changed or not."""
    corpus, run = resumable
    other = tmp_path / "other.txt"
    other.write_text(texts[1], encoding="utf-8")
    one_line_error(pretrain(other, run, "--steps", "2", "--resume"), 2, "cannot resume from", "a.txt was removed",
                   "other.txt was added", "another --out-dir")

    with open(corpus / "a.txt", "a", encoding="utf-8") as f:
        f.write(" one more sentence.")
    line = one_line_error(pretrain(corpus, run, "--steps", "2", "--resume"), 2, "cannot resume from",
                          "a.txt changed (size 6,000 -> 6,019 bytes)", "resume with the data the run started with")
    assert line.startswith("llms-from-scratch pretrain: error: ")
    assert torch.load(run / "checkpoint.pth", weights_only=True)["step"] == 1  # refused before training


def test_item4_resume_goes_on_when_only_the_files_times_changed(resumable):
    corpus, run = resumable
    os.utime(corpus / "a.txt")  # a copy or a touch: new time, same text
    result = pretrain(corpus, run, "--steps", "2", "--resume")
    assert result.returncode == 0, result.stderr
    assert torch.load(run / "checkpoint.pth", weights_only=True)["step"] == 2


# ---- 11: a damaged checkpoint is refused ----

def flip_optimizer_bytes(path: Path, count: int = 64) -> None:
    """Invert ``count`` bytes of the first exp_avg tensor inside the file, as a bad disk or copy would."""
    state = torch.load(path, weights_only=True)["optimizer"]["state"][0]["exp_avg"]
    needle = state.contiguous().view(torch.uint8).numpy().tobytes()
    data = bytearray(path.read_bytes())
    start = data.find(needle)
    assert start > 0 and data.count(needle) == 1
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    path.write_bytes(data)


def test_item11_a_corrupted_checkpoint_is_refused_naming_the_file(resumable):
    """Before: 64 flipped bytes in the optimizer state resumed silently and the embedding became NaN."""
    corpus, run = resumable
    flip_optimizer_bytes(run / "checkpoint.pth")
    one_line_error(pretrain(corpus, run, "--steps", "2", "--resume"), 1,
                   f"error: {run / 'checkpoint.pth'} is damaged", "checksum")
    one_line_error(cli("generate", "--checkpoint", run / "checkpoint.pth", "-p", "hi"), 1, "is damaged")


def test_item11_a_truncated_checkpoint_is_refused_naming_the_file(resumable):
    corpus, run = resumable
    path = run / "checkpoint.pth"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    one_line_error(pretrain(corpus, run, "--steps", "2", "--resume"), 1,
                   f"error: {path} cannot be read as a checkpoint")


def test_item11_checksums_cover_every_entry_and_bare_state_dicts_still_load(tmp_path):
    from llms_from_scratch.training.checkpoints import (
        CheckpointError,
        load_checkpoint,
        read_checkpoint,
        save_checkpoint,
        state_checksum,
    )

    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "c.pth", model, optimizer, step=7, note="x", history={"loss": [1.5, 2.0]})
    loaded = load_checkpoint(path, torch.nn.Linear(4, 3), torch.optim.AdamW(model.parameters()))
    assert loaded["step"] == 7 and "checksum" not in loaded

    saved = torch.load(path, weights_only=True)
    for key, changed in [("step", 8), ("note", "y"), ("history", {"loss": [1.5, 2.0000001]}),
                         ("model", {**saved["model"], "bias": saved["model"]["bias"] + 1e-7})]:
        assert state_checksum({**saved, key: changed}) != saved["checksum"], key
        torch.save({**saved, key: changed}, tmp_path / "edited.pth")
        with pytest.raises(CheckpointError, match="edited.pth is damaged"):
            read_checkpoint(tmp_path / "edited.pth")

    torch.save(model.state_dict(), tmp_path / "bare.pth")  # the book's way: no checksum to verify
    assert load_checkpoint(tmp_path / "bare.pth", torch.nn.Linear(4, 3))["model"].keys() == {"weight", "bias"}
    with pytest.raises(CheckpointError, match="bare.pth has no checksum"):
        read_checkpoint(tmp_path / "bare.pth", require_checksum=True)
    with pytest.raises(ValueError, match="may not be named"):
        save_checkpoint(tmp_path / "x.pth", model, checksum="0")


# ---- 14: temporary files of a killed save ----

KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    from llms_from_scratch.files import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_bytes(b"half a checkpoint")
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_item14_a_save_killed_with_sigkill_leaves_nothing_after_the_next_run(resumable):
    """Before: .checkpoint.pth.*.tmp files of killed saves stayed in the folder for good."""
    corpus, run = resumable
    for name in ("checkpoint.pth", "tokens.bin"):
        killed = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(run / name)], timeout=120)
        assert killed.returncode == -signal.SIGKILL
    leftovers = sorted(p.name for p in run.glob(".*.tmp"))
    assert len(leftovers) == 2 and leftovers[0].startswith(".checkpoint.pth.")

    result = cli("pretrain", "--data", corpus, "--out-dir", run, *TINY[:-1], "--steps", "2", "--resume")
    assert result.returncode == 0, result.stderr
    assert not list(run.glob(".*.tmp"))
    assert "removed 2 temporary file(s) left by a run that was killed" in result.stderr


HOLD_FOLDER = textwrap.dedent("""
    import sys, time
    from llms_from_scratch.training.run_folder import exclusive_run_folder
    with exclusive_run_folder(sys.argv[1], ["checkpoint.pth"]):
        print("holding", flush=True)
        time.sleep(120)
""")


def test_item14_a_live_runs_folder_and_temporary_files_are_left_alone(resumable):
    corpus, run = resumable
    holder = subprocess.Popen([sys.executable, "-c", HOLD_FOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        live = run / f".checkpoint.pth.{os.uname().nodename}-{holder.pid}.0a1b2c3d.tmp"
        live.write_bytes(b"being written")
        one_line_error(pretrain(corpus, run, "--steps", "2", "--resume"), 1,
                       f"is in use by process {holder.pid}", "another --out-dir")
        assert live.exists()
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert pretrain(corpus, run, "--steps", "2", "--resume").returncode == 0
    assert not live.exists()


# ---- 6: user errors: one line, exit 2 for the command line, 1 for a failure while running ----

@pytest.mark.parametrize("extra, message", [
    (["--steps", "0"], "argument --steps: must be at least 1, got 0"),
    (["--steps", "2", "--eval-interval", "0"], "argument --eval-interval: must be at least 1, got 0"),
    (["--steps", "2", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["--steps", "2", "--val-fraction", "1.5"], "--val-fraction must be between 0 and 1 (both excluded), got 1.5"),
    (["--epochs", "nan"], "--epochs must be a positive number, got nan"),
    (["--steps", "2", "--device", "foo"], "--device 'foo' is not a device; use auto, cpu, cuda, cuda:N or mps"),
])
def test_item6_wrong_values_are_usage_errors_before_anything_is_written(corpus, tmp_path, extra, message):
    line = one_line_error(pretrain(corpus, tmp_path / "run", *extra), 2, message)
    assert line.startswith("llms-from-scratch pretrain: error: ")
    assert not (tmp_path / "run").exists()


def test_item6_a_missing_corpus_is_a_usage_error(tmp_path):
    one_line_error(pretrain(tmp_path / "absent", tmp_path / "run", "--steps", "1"), 2,
                   "absent is neither a text file nor a folder; pass an existing file or folder as --data")
    (tmp_path / "empty").mkdir()
    one_line_error(pretrain(tmp_path / "empty", tmp_path / "run", "--steps", "1"), 2, "no .txt files below")
    assert not (tmp_path / "run").exists()


def test_item6_a_corpus_that_is_not_utf8_names_the_file_and_the_offset(corpus, tmp_path):
    """Before: "'utf-8' codec can't decode byte 0xff in position 600", with no file named."""
    (corpus / "sub" / "latin1.txt").write_bytes("caf\u00e9 ".encode("latin-1") * 3)
    one_line_error(pretrain(corpus, tmp_path / "run", "--steps", "1"), 1,
                   f"error: {corpus / 'sub' / 'latin1.txt'} is not UTF-8 text: byte 0xe9 at offset 3",
                   "convert the file to UTF-8")
    assert not list((tmp_path / "run").glob("tokens.*"))


def test_item6_resume_without_a_checkpoint_or_with_another_model(resumable, tmp_path):
    corpus, run = resumable
    one_line_error(pretrain(corpus, tmp_path / "new", "--steps", "2", "--resume"), 2,
                   "--resume: no checkpoint at", "start without --resume first")
    assert not (tmp_path / "new").exists()
    one_line_error(cli("pretrain", "--data", corpus, "--out-dir", run, *TINY, "--emb-dim", "32", "--steps", "2",
                       "--resume"), 2,
                   "it was trained with emb_dim=16, this run asks for emb_dim=32",
                   "pass the same model options as the original run")


def test_item6_checks_come_before_the_model_in_process(corpus, tmp_path, capsys):
    """The same checks through ``main``, for the values argparse lets through."""
    for extra, message in [(["--context-length", "0"], "argument --context-length: must be at least 1"),
                           (["--max-norm", "-1"], "--max-norm must be a positive number"),
                           (["--drop-rate", "1"], "--drop-rate must be in [0, 1), got 1.0"),
                           (["--learning-rate", "inf"], "--learning-rate must be a positive number")]:
        with pytest.raises(SystemExit) as info:
            main(["pretrain", "--data", str(corpus), "--out-dir", str(tmp_path / "run"), "--steps", "1", *extra])
        assert info.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
