"""Attention against hand-written references: grouped-query attention (MHA, GQA, MQA, with and without a
sliding window) against naive attention, and latent attention's absorbed decode path against the naive one."""

from __future__ import annotations

import math

import pytest
import torch
from zoo_reference import random_model, stepwise_logits

from llms_from_scratch.models import get_config
from llms_from_scratch.nn import GroupedQueryAttention, MLAConfig, MoEConfig, RopeScaling, build_attention_mask

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(vocab_size=256, emb_dim=32, n_layers=2, hidden_dim=48, context_length=256)


def _naive_attention(att, x, causal=True, window=None):
    b, t, _ = x.shape
    q = att.W_query(x).view(b, t, att.n_heads, att.head_dim).transpose(1, 2)
    k = att.W_key(x).view(b, t, att.n_kv_groups, att.head_dim).transpose(1, 2)
    v = att.W_value(x).view(b, t, att.n_kv_groups, att.head_dim).transpose(1, 2)
    rep = att.n_heads // att.n_kv_groups
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(att.head_dim)
    i, j = torch.arange(t)[:, None], torch.arange(t)[None]
    allowed = (j <= i) if causal else torch.ones(t, t, dtype=torch.bool)
    if window is not None:
        allowed &= i - j < window
    scores = scores.masked_fill(~allowed, float("-inf"))
    out = scores.softmax(-1) @ v
    return att.out_proj(out.transpose(1, 2).reshape(b, t, -1))


@pytest.mark.parametrize("n_kv_groups", [4, 2, 1])  # MHA, GQA, MQA
@pytest.mark.parametrize("window", [None, 3])
def test_attention_matches_naive_reference(n_kv_groups, window):
    torch.manual_seed(0)
    att = GroupedQueryAttention(32, 4, n_kv_groups, 8, sliding_window=window).eval()
    x = torch.randn(2, 7, 32)
    mask = build_attention_mask(7, torch.ones(2, 7, dtype=torch.bool), sliding_window=window) if window else None
    torch.testing.assert_close(att(x, mask), _naive_attention(att, x, window=window), atol=1e-6, rtol=1e-5)


def test_window_at_least_sequence_length_equals_full_attention():
    torch.manual_seed(0)
    att = GroupedQueryAttention(32, 4, 2, 8).eval()
    x = torch.randn(1, 6, 32)
    windowed = build_attention_mask(6, torch.ones(1, 6, dtype=torch.bool), sliding_window=6)
    torch.testing.assert_close(att(x, windowed), att(x, None), atol=1e-6, rtol=1e-5)


def test_mla_absorbed_decode_equals_naive():
    cfg = get_config(
        "deepseek-v3", **SMALL, n_heads=4, head_dim=24,
        mla=MLAConfig(kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, q_lora_rank=24,
                      mscale_all_dim=1.0),
        moe=MoEConfig(n_experts=4, n_experts_per_tok=2, hidden_dim=16, scoring="sigmoid", n_groups=2,
                      topk_groups=1, routed_scaling=2.5, n_shared_experts=1, correction_bias=True,
                      first_dense_layers=1),
        rope_scaling=RopeScaling("yarn", factor=8.0, original_context_length=16, attention_factor=1.0),
    )
    model = random_model(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 20), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    naive, cache = stepwise_logits(model, ids, mask, [8] + [1] * 12)
    # the cache holds the latent and the shared rope key only: kv_lora_rank + qk_rope_head_dim per token
    keys, values = cache.keys_per_layer[0], cache.values_per_layer[0]  # (batch, groups, slots, dim)
    assert keys.shape[-1] == 16 and values.shape[-1] == 8 and keys.shape[1] == 1
    for block in model.trf_blocks:
        block.att.absorb = True
    absorbed, _ = stepwise_logits(model, ids, mask, [8] + [1] * 12)
    real = mask.bool()
    torch.testing.assert_close(absorbed[real], naive[real], atol=1e-5, rtol=1e-5)
