"""The shared blocks against independent references: torch's own RMSNorm, transformers' RoPE tables,
naive attention, and Meta's interleaved RoPE layout."""

from __future__ import annotations

import math

import pytest
import torch
from llms_from_scratch.models import build_model, get_config, load_hf_checkpoint, load_meta_llama_checkpoint
from llms_from_scratch.models.meta_llama import save_meta_llama_checkpoint
from llms_from_scratch.nn import (
    GroupedQueryAttention,
    KVCache,
    RMSNorm,
    RopeScaling,
    RotaryEmbedding,
    apply_rope,
    build_attention_mask,
    rope_inv_freq,
)

transformers = pytest.importorskip("transformers")
from zoo_reference import hf_reference  # noqa: E402


def test_rmsnorm_matches_torch():
    torch.manual_seed(0)
    ours = RMSNorm(16, eps=1e-6)
    ref = torch.nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        ours.scale.copy_(torch.randn(16))
        ref.weight.copy_(ours.scale)
    x = torch.randn(3, 5, 16)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("rope_type", ["default", "llama3", "yarn"])
def test_rope_inverse_frequencies_match_transformers(rope_type):
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    params = {"rope_type": rope_type, "rope_theta": 500_000.0}
    scaling = None
    if rope_type == "llama3":
        params.update(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192)
        scaling = RopeScaling("llama3", 8.0, 8192)
    elif rope_type == "yarn":
        params.update(factor=4.0, original_max_position_embeddings=4096)
        scaling = RopeScaling("yarn", 4.0, 4096)
    cfg = transformers.LlamaConfig(hidden_size=1024, num_attention_heads=8, max_position_embeddings=131072,
                                   rope_parameters=params)
    reference = LlamaRotaryEmbedding(cfg)
    expected, factor = reference.inv_freq, reference.attention_scaling
    got, got_factor = rope_inv_freq(128, 500_000.0, scaling)
    torch.testing.assert_close(got, expected.float(), atol=0, rtol=1e-6)
    assert got_factor == pytest.approx(factor)


def test_interleaved_rope_equals_permuted_split_half():
    """Rotating interleaved pairs equals rotating split halves after Meta->HF row permutation."""
    from llms_from_scratch.models.weights import permute_for_rope

    torch.manual_seed(0)
    heads, head_dim = 2, 8
    x = torch.randn(1, heads, 5, head_dim)
    rope = RotaryEmbedding(head_dim, 10_000.0)
    cos, sin = rope(torch.arange(5)[None], torch.float32)
    interleaved = apply_rope(x, cos, sin, interleaved=True)
    # permuting the features of each head like the weight rows gives the split-half layout
    permute = permute_for_rope(torch.arange(heads * head_dim).float(), heads).long().view(heads, head_dim)
    x_split = torch.stack([x[:, h, :, permute[h] - h * head_dim] for h in range(heads)], dim=1)
    out_split = apply_rope(x_split, cos, sin)
    back = torch.stack([interleaved[:, h, :, permute[h] - h * head_dim] for h in range(heads)], dim=1)
    torch.testing.assert_close(out_split, back)


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


def test_kv_cache_owns_position_and_rejects_overflow():
    cache = KVCache(n_layers=1, batch_size=2, n_kv_groups=1, head_dim=4, max_length=5)
    start, pos = cache.append_tokens(torch.tensor([[0, 1, 1], [1, 1, 1]]))
    assert start == 0 and pos.tolist() == [[0, 0, 1], [0, 1, 2]]
    start, pos = cache.append_tokens(torch.ones(2, 1, dtype=torch.long))
    assert start == 3 and pos.tolist() == [[2], [3]] and cache.length == 4
    with pytest.raises(ValueError, match="overflow"):
        cache.append_tokens(torch.ones(2, 2, dtype=torch.long))
    cache.reset()
    assert cache.length == 0 and cache.next_position.tolist() == [0, 0]


def test_meta_llama_layout_round_trip(tmp_path):
    """Meta's interleaved q/k rows are permuted on load: logits equal the Hugging Face model's."""
    cfg = get_config("llama3-8b", vocab_size=256, emb_dim=64, n_layers=2, n_heads=4, n_kv_groups=2,
                     hidden_dim=172, context_length=64)
    ref = hf_reference(cfg)
    ref.save_pretrained(tmp_path / "hf")
    ours = load_hf_checkpoint(tmp_path / "hf")
    save_meta_llama_checkpoint(ours, tmp_path / "meta")
    raw = torch.load(tmp_path / "meta" / "consolidated.00.pth", weights_only=True)
    assert not torch.equal(raw["layers.0.attention.wq.weight"], ours.trf_blocks[0].att.W_query.weight)
    meta = load_meta_llama_checkpoint(tmp_path / "meta", config=cfg)
    ids = torch.arange(20)[None]
    with torch.no_grad():
        torch.testing.assert_close(meta(ids), ref(ids).logits, atol=1e-5, rtol=1e-5)


def test_config_from_meta_params_matches_registry():
    from llms_from_scratch.models.meta_llama import config_from_params

    params = {"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
              "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0}
    assert config_from_params(params) == get_config("llama3-8b")


def test_parameter_counts_of_official_sizes():
    expected = {"gpt2-124m": 124.4e6, "llama3.2-1b": 1.24e9, "qwen3-0.6b": 0.60e9, "bert-base-uncased": 109.5e6}
    for name, count in expected.items():
        with torch.device("meta"):
            model = build_model(get_config(name))
        n = sum(p.numel() for p in model.parameters())
        assert abs(n - count) / count < 0.01, (name, n)
