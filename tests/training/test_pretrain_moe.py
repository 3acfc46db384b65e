"""``pretrain --moe``: MoE feed-forward blocks, the balancing options, the checkpoint's record of them and resuming."""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.cli import main
from llms_from_scratch.data import read_text
from llms_from_scratch.nn.moe import MoEFeedForward
from llms_from_scratch.pretrain import PretrainArgs, pretrain
from llms_from_scratch.training.moe_gpt import build_gpt
from llms_from_scratch.training.pretrain_args import check_values

TINY = {"context_length": 16, "emb_dim": 16, "n_layers": 2, "n_heads": 2, "batch_size": 2, "eval_interval": 2,
        "eval_iters": 1, "sample_tokens": 3, "quiet": True, "learning_rate": 1e-3, "warmup_steps": 1,
        "grad_accum_steps": 2, "moe": True, "moe_experts": 4, "moe_top_k": 2}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "verdict.txt"
    path.write_text(read_text("the-verdict")[:6000], encoding="utf-8")
    return path


def _run(corpus, out, **options):
    return pretrain(PretrainArgs(data=str(corpus), out_dir=str(out), **{**TINY, **options}))


def test_aux_balancing_trains_and_the_checkpoint_records_the_moe_config(corpus, tmp_path):
    result = _run(corpus, tmp_path, steps=3, moe_aux_weight=0.5)
    history = result["history"]
    # the weighted load-balancing loss: 0.5 x (at least top_k = 2 for any routing), kept apart from the LM loss
    assert len(history["aux_loss"]) == 3 and all(a >= 0.5 * 2 - 1e-4 for a in history["aux_loss"])
    ckpt = torch.load(result["checkpoint"], weights_only=True)
    cfg = ckpt["config"]
    assert {k: cfg[k] for k in cfg if k.startswith("moe_")} == {
        "moe_experts": 4, "moe_top_k": 2, "moe_hidden_dim": round(8 * 16 / 6), "moe_balance": "aux",
        "moe_aux_weight": 0.5, "moe_bias_rate": 0.001}
    model = build_gpt(cfg)  # the configuration alone rebuilds the model the weights belong to
    model.load_state_dict(ckpt["model"])
    assert sum(isinstance(m, MoEFeedForward) for m in model.modules()) == 2


@pytest.mark.slow  # two tiny runs end to end
def test_bias_balancing_resumes_bit_identically(corpus, tmp_path):
    straight = _run(corpus, tmp_path / "a", steps=4, moe_balance="bias", moe_bias_rate=0.05)
    _run(corpus, tmp_path / "b", steps=4, stop_at_step=2, moe_balance="bias", moe_bias_rate=0.05)
    resumed = _run(corpus, tmp_path / "b", steps=4, resume=True, moe_balance="bias", moe_bias_rate=0.05)
    assert resumed["history"]["train_loss"] == straight["history"]["train_loss"]
    a = torch.load(straight["checkpoint"], weights_only=True)["model"]
    b = torch.load(resumed["checkpoint"], weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the biases moved: 4 steps of +-0.05 each leave every expert's bias a multiple of 0.05, not all zero
    bias = a["trf_blocks.0.ff.correction_bias"]
    assert bias.abs().max() > 0 and torch.allclose(bias / 0.05, (bias / 0.05).round(), atol=1e-4)


def test_resume_with_other_moe_options_is_refused(corpus, tmp_path):
    _run(corpus, tmp_path, steps=1, moe_balance="none")
    with pytest.raises(ValueError, match="moe_experts=4.*moe_experts=2"):
        _run(corpus, tmp_path, steps=2, resume=True, moe_balance="none", moe_experts=2)
    with pytest.raises(ValueError, match="pass the same model options"):
        pretrain(PretrainArgs(data=str(corpus), out_dir=str(tmp_path), steps=2, resume=True,
                              **{**TINY, "moe": False}))


@pytest.mark.parametrize(("options", "message"), [
    ({"moe_top_k": 5}, "--moe-top-k must be between 1 and --moe-experts"),
    ({"moe_experts": 1, "moe_top_k": 1}, "--moe-experts must be at least 2"),
    ({"moe_balance": "loss"}, "--moe-balance must be one of none, aux, bias"),
    ({"moe_aux_weight": -1.0}, "--moe-aux-weight must be a number of at least 0"),
    ({"strategy": "ddp"}, "--moe works with --strategy single only"),
    ({"compile": True}, "--compile is not supported with --moe"),
])
def test_impossible_moe_settings_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        check_values(PretrainArgs(data="x", out_dir="y", steps=1, **{**TINY, **options}))


def test_cli_pretrain_moe(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["pretrain", "--data", str(corpus), "--out-dir", str(out), "--steps", "2", "--context-length", "16",
              "--emb-dim", "16", "--n-layers", "1", "--n-heads", "2", "--batch-size", "2", "--quiet",
              "--sample-tokens", "2"]
    with pytest.raises(SystemExit) as info:
        main(common + ["--moe-experts", "4"])
    assert info.value.code == 2
    assert "--moe-experts sets up a mixture of experts: add --moe" in capsys.readouterr().err
    assert main(common + ["--moe", "--moe-experts", "4", "--moe-balance", "bias", "--moe-bias-rate", "0.01"]) == 0
    assert "2 steps" in capsys.readouterr().out
    cfg = torch.load(out / "checkpoint.pth", weights_only=True)["config"]
    assert (cfg["moe_experts"], cfg["moe_top_k"], cfg["moe_balance"], cfg["moe_bias_rate"]) == (4, 2, "bias", 0.01)
    # the checkpoint generates from the command line: `generate --checkpoint` rebuilds the MoE blocks
    assert main(["generate", "--checkpoint", str(out / "checkpoint.pth"), "-p", "I had always", "--max-new-tokens", "3",
                 "--temperature", "0"]) == 0
    assert "I had always" in capsys.readouterr().out
