"""Qwen3-Next: what the shared family recipe (``test_against_transformers.py``) does not reach.

The registered sizes, the hybrid cache, a chunked prefill longer than one DeltaNet chunk continued by recurrent
decoding, the fused-projection hooks, and the new options of the shared blocks (partial RoPE, the sigmoid-gated
shared expert) against their `transformers` counterparts.
"""

from __future__ import annotations

import pytest
import torch
from family_cases import CASES
from zoo_reference import random_model, stepwise_logits

from llms_from_scratch.models import build_model, get_config
from llms_from_scratch.models.memory import kv_cache_bytes, parameter_counts
from llms_from_scratch.models.qwen3_next import (
    CONFIGS,
    from_hf_config,
    fuse_projections,
    split_fused_projections,
    to_hf_config,
)
from llms_from_scratch.nn.hybrid_cache import HybridCache
from llms_from_scratch.nn.moe import MoEConfig, MoEFeedForward
from llms_from_scratch.nn.rope import RotaryEmbedding, apply_rope

pytestmark = pytest.mark.usefixtures("one_thread")
NAME = "qwen3-next-80b-a3b-instruct"


def test_registered_size_is_the_published_one():
    # model card: 80B parameters in total, 79B without the embeddings, 3B activated per token
    cfg = get_config(NAME)
    counts = parameter_counts(cfg)
    embeddings = 2 * cfg.vocab_size * cfg.emb_dim
    assert (round(counts["total"] / 1e9), round((counts["total"] - embeddings) / 1e9)) == (80, 79)
    assert round((counts["active"] - embeddings) / 1e9) == 3
    # the count is the model's, on a copy with fewer experts (building 48 x 512 experts takes long even on meta)
    few = cfg.replace(moe=MoEConfig(**{**cfg.moe.__dict__, "n_experts": 16}))
    with torch.device("meta"):
        model = build_model(few)
    assert parameter_counts(few)["total"] == sum(p.numel() for p in model.parameters())
    assert cfg.layer_types[:4] == ("linear", "linear", "linear", "full") and cfg.layer_types.count("full") == 12


def test_config_json_round_trip_and_transformers_defaults():
    transformers = pytest.importorskip("transformers")
    for cfg in CONFIGS.values():
        assert from_hf_config(to_hf_config(cfg)) == cfg
    # transformers' defaults describe 80B-A3B's architecture; our config.json must read back the same way there
    ours = to_hf_config(get_config(NAME))
    theirs = transformers.Qwen3NextConfig(**{k: v for k, v in ours.items() if k != "model_type"})
    default = transformers.Qwen3NextConfig()
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
                "linear_conv_kernel_dim", "num_experts", "num_experts_per_tok", "moe_intermediate_size",
                "shared_expert_intermediate_size", "layer_types", "vocab_size"):
        assert getattr(theirs, key) == getattr(default, key), key
    assert theirs.rope_parameters["partial_rotary_factor"] == 0.25


def test_hybrid_cache_holds_keys_for_full_layers_and_a_fixed_state_for_linear_ones():
    cfg = CASES[NAME]
    model = random_model(cfg)
    short, long = model.new_cache(2, 16), model.new_cache(2, 64)
    for cache, length in ((short, 16), (long, 64)):  # the estimator counts what the cache holds (float32 here)
        assert cache.nbytes() == kv_cache_bytes(cfg, length, batch_size=2, bytes_per_number=4)
    assert isinstance(short, HybridCache)
    assert len(short.keys_per_layer) == cfg.layer_types.count("full")
    assert sorted(short.recurrent_states) == [i for i, t in enumerate(cfg.layer_types) if t == "linear"]
    assert short.linear.nbytes() == long.linear.nbytes()  # the linear layers' state does not grow with the context
    ids = torch.randint(0, cfg.vocab_size, (2, 5))
    with torch.no_grad():
        model(ids, cache=short)
    assert short.recurrent_states[0].abs().sum() > 0
    with pytest.raises(ValueError, match="cannot roll back"):
        short.rollback(1)
    short.reset()
    assert short.length == 0 and all(s.abs().sum() == 0 for s in short.recurrent_states.values())


def test_recurrent_decode_continues_a_chunked_prefill_with_left_padding():
    """70 prompt tokens (two DeltaNet chunks of 64) fed in two uneven pieces, then token by token, equal one
    pass over the whole left-padded batch: the padding mask reaches the linear layers in every piece."""
    cfg = CASES[NAME]
    model = random_model(cfg)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (2, 75), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :9] = 0  # the second row is 9 tokens shorter
    with torch.no_grad():
        full = model(ids, mask)
    stepped, _ = stepwise_logits(model, ids, mask, [40, 30, 1, 1, 1, 1, 1])
    with torch.no_grad():
        alone = model(ids[1:, 9:])
    # the chunk boundaries differ, so float32 rounding differs (~3e-6 in the delta rule's outputs), and the gated
    # RMSNorm over 6-wide value heads magnifies it where a head's output is small; a lost state or a padding token
    # written into it changes logits by far more than this
    real = mask.bool()
    torch.testing.assert_close(stepped[real], full[real], atol=5e-3, rtol=5e-3)
    torch.testing.assert_close(full[1, 9:], alone[0], atol=5e-3, rtol=5e-3)


def test_fused_projection_hooks_invert_each_other():
    cfg = CASES[NAME]
    la = cfg.linear_attn
    rows_qkvz = 2 * la.n_qk_heads * la.qk_head_dim + 2 * la.n_heads * la.v_head_dim
    g = torch.Generator().manual_seed(0)
    stored = {"model.layers.0.linear_attn.in_proj_qkvz.weight": torch.randn(rows_qkvz, cfg.emb_dim, generator=g),
              "model.layers.0.linear_attn.in_proj_ba.weight": torch.randn(2 * la.n_heads, cfg.emb_dim, generator=g),
              "model.layers.0.linear_attn.out_proj.weight": torch.randn(cfg.emb_dim, 24, generator=g)}
    names, get = split_fused_projections(list(stored), stored.__getitem__, cfg)
    assert sorted(n.rsplit(".", 2)[-2] for n in names) == ["in_proj_a", "in_proj_b", "in_proj_qkv", "in_proj_z",
                                                           "out_proj"]
    # the query rows of head group 1 follow those of group 0 (in the checkpoint, group 0's k, v and z lie between)
    qkv = get("model.layers.0.linear_attn.in_proj_qkv.weight")
    per_group = rows_qkvz // la.n_qk_heads
    torch.testing.assert_close(qkv[la.qk_head_dim : 2 * la.qk_head_dim],
                               stored["model.layers.0.linear_attn.in_proj_qkvz.weight"][per_group : per_group
                                                                                       + la.qk_head_dim])
    back = fuse_projections({n: get(n) for n in names}, cfg)
    assert back.keys() == stored.keys() and all(torch.equal(back[k], stored[k]) for k in stored)


def test_partial_rope_matches_transformers():
    module = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")
    q, k = torch.randn(2, 4, 7, 16), torch.randn(2, 2, 7, 16)
    cos, sin = RotaryEmbedding(4, 10_000_000.0)(torch.arange(7)[None].expand(2, 7), torch.float32)
    theirs = module.apply_rotary_pos_emb(q, k, cos[:, 0], sin[:, 0])
    assert torch.equal(apply_rope(q, cos, sin), theirs[0]) and torch.equal(apply_rope(k, cos, sin), theirs[1])
    assert torch.equal(apply_rope(q, cos, sin)[..., 4:], q[..., 4:])  # the other 12 features carry no position


def test_gated_shared_expert_matches_transformers():
    transformers = pytest.importorskip("transformers")
    module = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")
    config = transformers.Qwen3NextConfig(hidden_size=24, num_experts=6, num_experts_per_tok=2,
                                          moe_intermediate_size=10, shared_expert_intermediate_size=10)
    config._experts_implementation = "eager"
    torch.manual_seed(0)
    hf = module.Qwen3NextSparseMoeBlock(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.3)
    ours = MoEFeedForward(24, MoEConfig(n_experts=6, n_experts_per_tok=2, hidden_dim=10, n_shared_experts=1,
                                        shared_expert_gate=True)).eval()
    with torch.no_grad():
        ours.gate.weight.copy_(hf.gate.weight)
        for e, expert in enumerate(ours.experts):
            gate, up = hf.experts.gate_up_proj[e].chunk(2, dim=0)
            expert.fc1.weight.copy_(gate)
            expert.fc2.weight.copy_(up)
            expert.fc3.weight.copy_(hf.experts.down_proj[e])
        for ours_fc, theirs in zip((ours.shared_experts.fc1, ours.shared_experts.fc2, ours.shared_experts.fc3),
                                   (hf.shared_expert.gate_proj, hf.shared_expert.up_proj, hf.shared_expert.down_proj)):
            ours_fc.weight.copy_(theirs.weight)
        ours.shared_expert_gate.weight.copy_(hf.shared_expert_gate.weight)
        x = torch.randn(2, 9, 24)
        torch.testing.assert_close(ours(x), hf(x), atol=1e-6, rtol=1e-6)
        ours.shared_expert_gate = None  # without the gate the output differs: the test sees the gate
        assert not torch.allclose(ours(x), hf(x), atol=1e-3)
