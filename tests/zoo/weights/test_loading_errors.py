"""Checkpoints that do not fit the model, or a device that cannot hold them, get a clear error that names the
problem and the fix."""

from __future__ import annotations

import json

import pytest
import torch
from zoo_reference import random_model

from llms_from_scratch.models import (
    WeightMismatchError,
    build_model,
    get_config,
    load_hf_checkpoint,
    save_hf_checkpoint,
)
from llms_from_scratch.nn import MoEConfig

SMALL = dict(vocab_size=128, emb_dim=32, n_layers=2, n_heads=4, n_kv_groups=2, hidden_dim=48, context_length=64)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(get_config("qwen3-0.6b", **SMALL)).eval()
    folder = tmp_path_factory.mktemp("qwen3")
    save_hf_checkpoint(model, folder)
    return model, folder


def test_weights_that_do_not_fit_name_tensor_and_shapes(saved):
    _, folder = saved
    wrong = get_config("qwen3-0.6b", **{**SMALL, "hidden_dim": 64})
    with pytest.raises(WeightMismatchError) as info:
        load_hf_checkpoint(folder, config=wrong)
    message = str(info.value)
    assert "model.layers.0.mlp.gate_proj.weight -> trf_blocks.0.ff.fc1.weight" in message
    assert "checkpoint shape (48, 32), model expects (64, 32)" in message


def test_missing_and_unused_tensors_are_listed(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    model, folder = saved
    tensors = load_file(folder / "model.safetensors")
    tensors.pop("model.layers.1.self_attn.k_norm.weight")
    tensors["model.layers.0.mlp.extra.weight"] = torch.zeros(2)
    save_file(tensors, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(WeightMismatchError) as info:
        load_hf_checkpoint(tmp_path)
    message = str(info.value)
    assert "trf_blocks.1.att.k_norm.scale" in message and "model.layers.0.mlp.extra.weight" in message


def test_missing_shard_is_named(saved, tmp_path):
    import transformers

    model, folder = saved
    ref = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ref.save_pretrained(tmp_path, max_shard_size="20KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2
    reloaded = load_hf_checkpoint(tmp_path)  # the sharded folder loads while complete
    ids = torch.arange(10)[None]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids), model(ids), atol=1e-6, rtol=1e-6)
    (tmp_path / shards[1]).unlink()
    with pytest.raises(FileNotFoundError, match=rf"missing: {shards[1]}"):
        load_hf_checkpoint(tmp_path)


def test_unsupported_model_type_and_missing_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(ValueError, match="model_type 'mamba'.*supported: bert, .*gpt2, .*llama, .*qwen3"):
        load_hf_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_hf_checkpoint(tmp_path / "nowhere")


def test_dtype_the_device_lacks(monkeypatch, saved):
    _, folder = saved
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA GPU is available; use device='cpu'"):
        load_hf_checkpoint(folder, device="cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(RuntimeError, match="does not support bfloat16; load with dtype=torch.float16"):
        load_hf_checkpoint(folder, device="cuda", dtype=torch.bfloat16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    with pytest.raises(RuntimeError, match="MPS has no float64"):
        build_model(get_config("qwen3-0.6b", **SMALL), device="mps", dtype=torch.float64)


def test_mismatched_expert_count_is_a_clear_error(tmp_path):
    cfg = get_config("qwen3-30b-a3b", **{**SMALL, "vocab_size": 256, "context_length": 256}, head_dim=8,
                     moe=MoEConfig(n_experts=6, n_experts_per_tok=2, hidden_dim=16))
    save_hf_checkpoint(random_model(cfg), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_experts": 8}))
    with pytest.raises(ValueError, match=r"layer 0 of the checkpoint holds 6 experts .* n_experts=8"):
        load_hf_checkpoint(tmp_path)
    with pytest.raises(ValueError, match=r"n_experts_per_tok \(9\) must be in 1..n_experts \(6\)"):
        MoEConfig(n_experts=6, n_experts_per_tok=9, hidden_dim=16)
