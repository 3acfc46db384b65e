"""Mistral, Qwen3-MoE and DeepSeek-V3 equal `transformers` on random weights (fp32, eager attention and experts).

Each case is a registered config shrunk to 2-3 layers that keeps what makes the family distinctive: a
sliding window of 4 keys (prompts and generations run far past it, through the ring-buffer cache); 8 experts
with top-3 softmax routing; DeepSeek's latent attention with YaRN over a 16-token original length, a dense
first layer, 8 experts in 4 groups of which 2 stay eligible, a non-zero correction bias and a shared expert,
and the V2-Lite-style variant without the low-rank query. The checks themselves are zoo I's
(`test_zoo_families.py`), run here on these families.
"""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.models import get_config, load_hf_checkpoint, save_hf_checkpoint
from llms_from_scratch.nn import MLAConfig, MoEConfig, RopeScaling

transformers = pytest.importorskip("transformers")
from test_zoo_families import (  # noqa: E402, F401  (the same checks as zoo I, collected for these cases)
    test_batched_equals_single,
    test_cached_equals_uncached,
    test_decode_layout_gives_the_same_tokens,
    test_greedy_continuation_matches,
    test_logits_match,
)
from zoo_reference import hf_config_for, one_thread, randomize_  # noqa: E402

SMALL = dict(vocab_size=512, emb_dim=64, n_layers=2, hidden_dim=96, context_length=128)
_MLA = MLAConfig(kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, q_lora_rank=24,
                 mscale_all_dim=1.0)
_DEEPSEEK_MOE = MoEConfig(n_experts=8, n_experts_per_tok=2, hidden_dim=32, scoring="sigmoid", n_groups=4,
                          topk_groups=2, routed_scaling=2.5, n_shared_experts=1, correction_bias=True,
                          first_dense_layers=1)
CASES = {
    "mistral-7b-v0.1": get_config("mistral-7b-v0.1", **SMALL, n_heads=4, n_kv_groups=2, head_dim=16,
                                  sliding_window=4),
    "mistral-7b-instruct-v0.3": get_config("mistral-7b-instruct-v0.3", **SMALL, n_heads=4, n_kv_groups=1, head_dim=16),
    "qwen3-30b-a3b": get_config("qwen3-30b-a3b", **SMALL, n_heads=4, n_kv_groups=2, head_dim=16,
                                moe=MoEConfig(n_experts=8, n_experts_per_tok=3, hidden_dim=32)),
    "deepseek-v3": get_config(
        "deepseek-v3", **{**SMALL, "n_layers": 3}, n_heads=4, head_dim=24, mla=_MLA, moe=_DEEPSEEK_MOE,
        rope_scaling=RopeScaling("yarn", factor=8.0, original_context_length=16, attention_factor=1.0),
    ),
    "deepseek-v3-no-q-lora": get_config(
        "deepseek-v3", **SMALL, n_heads=4, head_dim=24, mla=MLAConfig(**{**_MLA.__dict__, "q_lora_rank": None}),
        moe=_DEEPSEEK_MOE, rope_scaling=RopeScaling("yarn", factor=8.0, original_context_length=16,
                                                    attention_factor=1.0),
    ),
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    yield from one_thread()


def zoo2_reference(cfg, seed: int = 0):
    """A random fp32 `transformers` model for ``cfg`` with eager attention and experts, non-zero router bias."""
    model = transformers.AutoModelForCausalLM.from_config(
        hf_config_for(cfg), attn_implementation="eager", experts_implementation="eager", dtype=torch.float32
    )
    model.generation_config.eos_token_id = None  # random models: never stop early
    model.generation_config.pad_token_id = 0
    randomize_(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.copy_(0.5 * torch.randn(buf.shape, generator=g))  # large enough to change the choice
    return model.eval()


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request, tmp_path_factory):
    cfg = CASES[request.param]
    ref = zoo2_reference(cfg)
    folder = tmp_path_factory.mktemp(request.param)
    ref.save_pretrained(folder)
    return request.param, ref, load_hf_checkpoint(folder)


def test_config_round_trips(pair):
    name, _, ours = pair
    assert ours.cfg == CASES[name]


def test_save_round_trip_in_transformers(pair, tmp_path):
    _, ref, ours = pair
    save_hf_checkpoint(ours, tmp_path)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, attn_implementation="eager", experts_implementation="eager", dtype=torch.float32
    ).eval()
    ids = torch.tensor([[5, 17, 300, 42, 8, 99, 123, 7, 250, 3, 11]])
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, ref(ids).logits)
    assert load_hf_checkpoint(tmp_path).cfg == ours.cfg


def test_correction_bias_changes_the_routing(tmp_path):
    """Guard that the DeepSeek case exercises the selection-only bias: without it other experts win."""
    from llms_from_scratch.nn.moe import route

    zoo2_reference(CASES["deepseek-v3"]).save_pretrained(tmp_path)
    moe = load_hf_checkpoint(tmp_path).trf_blocks[-1].ff
    assert moe.correction_bias.abs().min() > 0
    x = torch.randn(64, moe.gate.in_features, generator=torch.Generator().manual_seed(0))
    logits = moe.gate(x)
    _, with_bias = route(logits, moe.cfg, moe.correction_bias)
    _, without = route(logits, moe.cfg, None)
    assert not torch.equal(with_bias.sort(dim=-1).values, without.sort(dim=-1).values)
