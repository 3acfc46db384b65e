"""The registry of model configs: registered configs have the published sizes, the estimators agree with real
objects, and unknown names or invalid configs get errors that list the problems.

Expected sizes are the parameter counts of the `transformers` classes on the official configs, listed in the
project's architecture reference (DeepSeek-V3 without its multi-token-prediction layer).
"""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.models import ModelConfig, build_model, get_config
from llms_from_scratch.models.blocks import make_cache
from llms_from_scratch.models.memory import kv_cache_bytes, parameter_counts
from llms_from_scratch.nn import MoEConfig

PUBLISHED = {  # billions: (stored, active per token)
    "mistral-7b-v0.1": (7.24, 7.24),
    "qwen1-1.8b": (1.84, 1.84),
    "qwen1-7b": (7.72, 7.72),
    "qwen1-14b": (14.17, 14.17),
    "qwen3-30b-a3b": (30.53, 3.35),
    "qwen3-235b-a22b": (235.09, 22.19),
    "deepseek-v3": (671.03, 37.55),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_registered_sizes(name):
    counts = parameter_counts(get_config(name))
    assert (round(counts["total"] / 1e9, 2), round(counts["active"] / 1e9, 2)) == PUBLISHED[name]


def test_registry_facts():
    assert get_config("mistral-7b-v0.1").layer_window(31) == 4096
    assert get_config("mistral-7b-instruct-v0.2").layer_window(0) is None
    assert get_config("mistral-7b-instruct-v0.3").vocab_size == 32768
    v3 = get_config("deepseek-v3")
    assert (v3.moe.n_groups, v3.moe.topk_groups, v3.moe.first_dense_layers, v3.mla.kv_lora_rank) == (8, 4, 3, 512)
    with pytest.raises(KeyError, match="qwen3-30b-a3b"):
        get_config("qwen3-30b-a3")


def test_estimators_match_real_objects():
    cfg = get_config("deepseek-v3", vocab_size=64, emb_dim=32, n_layers=3, hidden_dim=48, n_heads=2,
                     moe=MoEConfig(n_experts=4, n_experts_per_tok=2, hidden_dim=16, scoring="sigmoid", n_groups=2,
                                   topk_groups=1, n_shared_experts=1, correction_bias=True, first_dense_layers=1))
    model = build_model(cfg)
    assert parameter_counts(cfg)["total"] == sum(p.numel() for p in model.parameters())
    for name in ("deepseek-v3", "mistral-7b-v0.1", "qwen3-30b-a3b"):
        small = get_config(name, n_layers=2, vocab_size=8)
        cache = make_cache(small, 2, 5000, dtype=torch.bfloat16, device="cpu")  # what DecoderLM.new_cache builds
        assert cache.nbytes() == kv_cache_bytes(small, 5000, batch_size=2)


def test_parameter_counts_of_official_sizes():
    expected = {"gpt2-124m": 124.4e6, "llama3.2-1b": 1.24e9, "qwen3-0.6b": 0.60e9, "bert-base-uncased": 109.5e6}
    for name, count in expected.items():
        with torch.device("meta"):
            model = build_model(get_config(name))
        n = sum(p.numel() for p in model.parameters())
        assert abs(n - count) / count < 0.01, (name, n)


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
