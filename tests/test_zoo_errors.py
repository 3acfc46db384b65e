"""Bad input gets a clear error that names the problem and the fix."""

from __future__ import annotations

import json

import pytest
import torch

from llms_from_scratch.generation import generate
from llms_from_scratch.models import (
    ModelConfig,
    WeightMismatchError,
    build_model,
    get_config,
    load_hf_checkpoint,
    save_hf_checkpoint,
)

SMALL = dict(vocab_size=128, emb_dim=32, n_layers=2, n_heads=4, n_kv_groups=2, hidden_dim=48, context_length=64)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(get_config("qwen3-0.6b", **SMALL)).eval()
    folder = tmp_path_factory.mktemp("qwen3")
    save_hf_checkpoint(model, folder)
    return model, folder


def test_unknown_model_name_suggests_close_matches():
    with pytest.raises(KeyError, match=r"unknown model 'qwen3-0.6'.*Did you mean 'qwen3-0.6b'"):
        get_config("qwen3-0.6")
    with pytest.raises(KeyError, match="llama3.2-1b"):
        get_config("Llama-3.2-1B")


def test_invalid_config_lists_every_problem():
    with pytest.raises(ValueError) as info:
        get_config("llama3-8b", n_kv_groups=5, norm_eps=0.0)
    message = str(info.value)
    assert "must be a multiple of n_kv_groups (5)" in message and "norm_eps must be positive" in message
    # a config names its family; the list of families (models/families.py) says whether it exists
    mamba = ModelConfig(family="mamba", vocab_size=1, context_length=1, emb_dim=2, n_layers=1, n_heads=1, hidden_dim=1)
    with pytest.raises(ValueError, match="unknown model family 'mamba'; known families: gpt2, llama"):
        build_model(mamba)


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
    with pytest.raises(ValueError, match="model_type 'mamba'.*supported: bert, .*gpt2, llama, .*qwen3"):
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


def test_generation_arguments_are_checked(saved):
    model, _ = saved
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        generate(model, ids, 2, temperature=-1.0)
    with pytest.raises(ValueError, match="top_p must be in"):
        generate(model, ids, 2, temperature=1.0, top_p=1.5)
    with pytest.raises(ValueError, match="attention_mask shape"):
        generate(model, ids, 2, attention_mask=torch.ones(1, 2))
    gpt2 = build_model(get_config("gpt2-124m", vocab_size=64, emb_dim=16, n_layers=1, n_heads=2, context_length=8))
    with pytest.raises(ValueError, match="exceeds the learned position table"):
        generate(gpt2.eval(), torch.zeros(1, 6, dtype=torch.long), 4)


def test_sampling_options_behave():
    from llms_from_scratch.generation import next_token

    logits = torch.tensor([[0.0, 5.0, 4.0, -1.0]])
    g = torch.Generator().manual_seed(0)
    assert next_token(logits).item() == 1
    picks = {next_token(logits, temperature=1.0, top_k=2, generator=g).item() for _ in range(50)}
    assert picks == {1, 2}
    picks = {next_token(logits, temperature=1.0, top_p=0.5, generator=g).item() for _ in range(20)}
    assert picks == {1}
    seen = torch.tensor([[False, True, False, False]])
    assert next_token(logits, repetition_penalty=2.0, seen=seen).item() == 2


def test_sampling_params_are_one_validated_object(saved):
    import dataclasses

    from llms_from_scratch.serving.generation import SamplingParams

    model, _ = saved
    ids = torch.tensor([[1, 2, 3]])
    params = SamplingParams(temperature=1.0, top_k=5, seed=7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.temperature = 0.5
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        SamplingParams(top_k=0)
    # the object and the keywords are the same request; a seed makes the draw repeatable
    by_object = generate(model, ids, 6, params)
    assert torch.equal(by_object, generate(model, ids, 6, temperature=1.0, top_k=5, seed=7))
    assert torch.equal(by_object, generate(model, ids, 6, SamplingParams(), temperature=1.0, top_k=5, seed=7))
    with pytest.raises(TypeError, match="unknown sampling option"):
        generate(model, ids, 2, temprature=1.0)
