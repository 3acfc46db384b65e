"""RMSNorm and RoPE against independent references: torch's own RMSNorm, transformers' RoPE tables, and
Meta's interleaved RoPE layout."""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.nn import RMSNorm, RopeScaling, RotaryEmbedding, apply_rope, rope_inv_freq

transformers = pytest.importorskip("transformers")


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
