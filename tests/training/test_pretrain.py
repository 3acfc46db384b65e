"""The pretraining command: token file, resumable training (bit-identical on CPU), CLI generate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llms_from_scratch.cli import main
from llms_from_scratch.data import gpt2_encoding, read_text
from llms_from_scratch.pretrain import PretrainArgs, pretrain
from llms_from_scratch.token_file import TokenWindows, build_token_file

TINY = {"context_length": 32, "emb_dim": 32, "n_layers": 2, "n_heads": 2, "batch_size": 2, "eval_interval": 3,
        "eval_iters": 1, "sample_tokens": 5, "quiet": True, "learning_rate": 1e-3, "warmup_steps": 2}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    text = read_text("the-verdict")
    (folder / "a.txt").write_text(text[:12000], encoding="utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text(text[12000:], encoding="utf-8")
    return folder


def test_token_file_holds_every_document_and_boundaries(corpus, tmp_path):
    tokenizer = gpt2_encoding()
    path = build_token_file(corpus, tmp_path / "tokens.bin", tokenizer)
    tokens = np.memmap(path, dtype=np.uint16, mode="r")
    a = tokenizer.encode((corpus / "a.txt").read_text())
    b = tokenizer.encode((corpus / "sub" / "b.txt").read_text())
    assert tokens.tolist() == a + [50256] + b + [50256]
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.bin"]

    windows = TokenWindows(path, context_length=16, batch_size=3, split="train", seed=0)
    x, y = windows.next_batch()
    assert x.shape == y.shape == (3, 16) and torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(ValueError, match="fewer than context_length"):
        TokenWindows(path, context_length=5000, batch_size=1, split="val")


@pytest.mark.slow  # trains end to end
def test_resume_is_bit_identical_to_an_uninterrupted_run(corpus, tmp_path):
    straight = pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "a"), steps=6, **TINY))

    first = pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "b"), steps=6, stop_at_step=3, **TINY))
    assert first["steps"] == 3
    resumed = pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "b"), steps=6, resume=True, **TINY))

    assert resumed["history"]["train_loss"] == straight["history"]["train_loss"]
    assert resumed["history"]["val_loss"][-1] == straight["history"]["val_loss"][-1]
    a = torch.load(straight["checkpoint"], weights_only=True)
    b = torch.load(resumed["checkpoint"], weights_only=True)
    assert a["step"] == b["step"] == 6
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert straight["history"]["train_loss"][-1] < straight["history"]["train_loss"][0]
    assert (tmp_path / "a" / "loss.png").stat().st_size > 0


def test_fused_and_plain_loss_train_alike(corpus, tmp_path):
    fused = pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "f"), steps=4, **TINY))
    plain = pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "p"), steps=4, fused_loss=False, **TINY))
    # the same batches and dropout masks; the two losses differ only in float rounding
    assert fused["history"]["train_loss"] == pytest.approx(plain["history"]["train_loss"], abs=1e-4)
    assert fused["history"]["val_loss"] == pytest.approx(plain["history"]["val_loss"], abs=1e-4)


def test_resume_with_a_different_model_is_refused(corpus, tmp_path):
    pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path), steps=1, **TINY))
    with pytest.raises(ValueError, match="pass the same model options"):
        pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path), steps=4, resume=True, **{**TINY, "emb_dim": 64}))


def test_cli_pretrain_then_generate(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(corpus), "--out-dir", str(out), "--steps", "3", "--context-length", "32",
                 "--emb-dim", "32", "--n-layers", "1", "--n-heads", "2", "--batch-size", "2", "--quiet",
                 "--grad-accum-steps", "2", "--sample-tokens", "3"]) == 0
    assert "3 steps, 384 tokens" in capsys.readouterr().out
    assert main(["generate", "--checkpoint", str(out / "checkpoint.pth"), "--prompt", "Every effort",
                 "--max-new-tokens", "4", "--temperature", "1.0", "--top-k", "5", "--top-p", "0.9"]) == 0
    assert capsys.readouterr().out.startswith("Every effort")
    assert main(["generate", "--checkpoint", str(tmp_path / "missing.pth"), "--prompt", "x"]) == 1


def test_bf16_autocast_and_gradient_accumulation_run_on_cpu(corpus, tmp_path):
    result = pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path), steps=2, precision="bf16",
                                   **{**TINY, "batch_size": 1}, grad_accum_steps=2))
    assert result["tokens_seen"] == 2 * 2 * 1 * 32  # steps x micro-batches x batch x context
    assert all(np.isfinite(result["history"]["train_loss"]))
    with pytest.raises(ValueError, match="exactly one of steps or epochs"):
        pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path / "x"), steps=2, epochs=1.0, **TINY))
