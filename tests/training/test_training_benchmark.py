"""The training-speed benchmark (ch05/10_llm-training-speed) measures what it claims to measure.

Behaviour only, never timing: every eager variant of the training step trains (finite loss, parameters move), and
transformers' GPT-2 with our weights copied in computes the same losses as our ``GPTModel``, step after step, with
chapter 5's plain loss and with the fused head loss the benchmark's "ours" cases use.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

FOLDER = Path(__file__).resolve().parents[2] / "ch05" / "10_llm-training-speed"
sys.path.insert(0, str(FOLDER))  # the script lives in the chapter folder, not in the package

import benchmark_training as bt  # noqa: E402

CFG = bt.CONFIGS["tiny"]


@pytest.fixture
def batch():
    return bt.random_batch(CFG, batch_size=2, seq_len=16)


def _models():
    ours = bt.build_ours(CFG, seed=7)
    hf = bt.build_transformers(CFG)
    bt.copy_weights_to_transformers(ours, hf)
    return ours, hf


@pytest.mark.parametrize("family", ["ours", "ours plain loss", "transformers"])
@pytest.mark.parametrize("bf16,fused", [(False, False), (True, False), (False, True), (True, True)])
def test_every_eager_variant_trains(batch, family, bf16, fused):
    torch.manual_seed(0)
    model = bt.build_transformers(CFG) if family == "transformers" else bt.build_ours(CFG)
    loss_fn = bt.lm_loss if family == "ours" else bt.loss_of
    optimizer = bt.make_optimizer(model, fused=fused)
    before = [p.detach().clone() for p in model.parameters()]
    loss = bt.train_step(model, optimizer, *batch, bf16=bf16, loss_fn=loss_fn)
    assert math.isfinite(loss)
    assert abs(loss - math.log(CFG["vocab_size"])) < 1.0  # random weights: close to uniform over the vocabulary
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert all(changed), f"{changed.count(False)} of {len(changed)} parameter tensors did not change"


@pytest.mark.parametrize("loss_fn", [bt.loss_of, bt.lm_loss], ids=["plain loss", "fused head loss"])
def test_transformers_with_copied_weights_matches_ours_step_by_step(batch, loss_fn):
    ours, hf = _models()
    inputs, _ = batch
    with torch.no_grad():
        torch.testing.assert_close(hf(inputs), ours(inputs), rtol=0, atol=1e-5)
    opt_ours, opt_hf = bt.make_optimizer(ours), bt.make_optimizer(hf)
    for _ in range(3):  # equal losses after updates mean equal gradients and equal optimizer steps too
        loss_ours = bt.train_step(ours, opt_ours, *batch, loss_fn=loss_fn)
        loss_hf = bt.train_step(hf, opt_hf, *batch)
        assert loss_ours == pytest.approx(loss_hf, abs=1e-5)


def test_bf16_losses_agree_roughly(batch):
    ours, hf = _models()
    loss_ours = bt.train_step(ours, bt.make_optimizer(ours), *batch, bf16=True, loss_fn=bt.lm_loss)
    loss_hf = bt.train_step(hf, bt.make_optimizer(hf), *batch, bf16=True)
    assert loss_ours == pytest.approx(loss_hf, abs=0.05)  # bf16 keeps about 3 significant digits


def test_weight_copy_needs_qkv_bias():
    with pytest.raises(ValueError, match="qkv_bias=True"):
        bt.build_transformers({**CFG, "qkv_bias": False})


def test_random_batch_targets_are_inputs_shifted():
    inputs, targets = bt.random_batch(CFG, batch_size=3, seq_len=10, seed=1)
    assert inputs.shape == targets.shape == (3, 10)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    with pytest.raises(ValueError, match="context_length"):
        bt.random_batch(CFG, batch_size=1, seq_len=CFG["context_length"] + 1)


@pytest.mark.slow  # trains end to end
def test_run_benchmark_writes_table_json_and_plot(tmp_path):
    results = bt.run_benchmark("tiny", batch_size=2, seq_len=16, rounds=2, steps=1, warmup=1, compile=False,
                               allocator_rounds=0, device="cpu", log=lambda _: None)
    names = [c["name"] for c in results["cases"]]
    assert names == ["ours eager fp32", "transformers eager fp32", "ours eager bf16", "transformers eager bf16",
                     "ours plain loss eager fp32", "ours plain loss eager bf16", "ours eager fp32 fused AdamW"]
    for case in results["cases"]:
        assert len(case["tokens_per_s"]) == 2 and all(v > 0 for v in case["tokens_per_s"])
        assert case["min"] <= case["median"] <= case["max"]
        assert math.isfinite(case["last_loss"])
    assert set(results["ratios_ours_over_transformers"]) == {"eager fp32", "eager bf16", "plain loss eager fp32",
                                                             "plain loss eager bf16"}
    table = bt.format_table(results)
    assert "ours / transformers" in table and "eager bf16" in table
    bt.save_json(results, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["config"] == "tiny"
    bt.plot_results(results, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.png"]  # no temporary files left


def test_unknown_config_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown config"):
        bt.run_benchmark("huge", compile=False, allocator_rounds=0)


def test_profile_step_lists_the_largest_operations(batch):
    model = bt.build_ours(CFG)
    rows = bt.profile_step(model, bt.make_optimizer(model), *batch, top=5, loss_fn=bt.lm_loss)
    assert len(rows) == 5
    assert [ms for _, ms, _ in rows] == sorted((ms for _, ms, _ in rows), reverse=True)
    assert 0 < sum(share for _, _, share in rows) <= 1 + 1e-9
    assert any(name in ("aten::mm", "aten::addmm", "aten::bmm") for name, _, _ in rows)
