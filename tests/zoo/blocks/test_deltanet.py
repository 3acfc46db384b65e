"""Gated DeltaNet: the chunked form equals the recurrence, cached decoding equals one pass over the whole
sequence, and the layer equals transformers' Qwen3-Next and Qwen3.5 layers on the same random weights."""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.nn.deltanet import (
    GatedDeltaNet,
    gated_delta_rule_chunked,
    gated_delta_rule_recurrent,
    l2_normalize,
)
from llms_from_scratch.nn.linear_state_cache import LinearAttentionCache

pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(b=2, h=3, t=37, dk=16, dv=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = l2_normalize(torch.randn(b, h, t, dk, generator=g)) * dk**-0.5
    k = l2_normalize(torch.randn(b, h, t, dk, generator=g))
    v = torch.randn(b, h, t, dv, generator=g)
    log_alpha = -torch.rand(b, h, t, generator=g)  # α in (e^-1, 1)
    beta = torch.rand(b, h, t, generator=g)
    return q, k, v, log_alpha, beta


def _naive_delta_rule(q, k, v, log_alpha, beta):
    """The textbook update with explicit matrices: S = α S (I - β k kᵀ) + β v kᵀ, o = S q."""
    b, h, t, dk = k.shape
    state = torch.zeros(b, h, v.shape[-1], dk)
    eye = torch.eye(dk)
    outs = []
    for i in range(t):
        kt, vt, bt = k[:, :, i], v[:, :, i], beta[:, :, i, None, None]
        erase = eye - bt * kt[..., :, None] * kt[..., None, :]
        state = log_alpha[:, :, i, None, None].exp() * state @ erase + bt * vt[..., :, None] * kt[..., None, :]
        outs.append((state @ q[:, :, i, :, None])[..., 0])
    return torch.stack(outs, dim=2), state


def test_recurrence_is_the_textbook_update():
    q, k, v, log_alpha, beta = _inputs()
    out, state = gated_delta_rule_recurrent(q, k, v, log_alpha, beta)
    ref_out, ref_state = _naive_delta_rule(q, k, v, log_alpha, beta)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state, ref_state, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk_size", [1, 4, 16, 64])
@pytest.mark.parametrize("t", [1, 37, 64])
def test_chunked_equals_recurrent(chunk_size, t):
    q, k, v, log_alpha, beta = _inputs(t=t)
    start = torch.randn(2, 3, 8, 16)  # a state carried in from earlier tokens
    out, state = gated_delta_rule_recurrent(q, k, v, log_alpha, beta, start)
    out_c, state_c = gated_delta_rule_chunked(q, k, v, log_alpha, beta, start, chunk_size=chunk_size)
    torch.testing.assert_close(out_c, out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state_c, state, rtol=1e-5, atol=1e-5)


def test_chunked_handles_strong_decay_without_overflow():
    # log α = -30 per token: within a chunk γ_r spans e^-1900, and the masked ratios must not become inf/NaN
    q, k, v, _, beta = _inputs(t=70)
    log_alpha = torch.full_like(beta, -30.0)
    out, state = gated_delta_rule_chunked(q, k, v, log_alpha, beta, chunk_size=64)
    ref_out, ref_state = gated_delta_rule_recurrent(q, k, v, log_alpha, beta)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state, ref_state, rtol=1e-5, atol=1e-5)


def test_gradients_flow_through_the_chunked_form():
    inputs = [x.double().requires_grad_() for x in _inputs(b=1, h=2, t=11, dk=6, dv=5)]
    out, state = gated_delta_rule_chunked(*inputs, chunk_size=4)
    (out.sum() + state.pow(2).sum()).backward()
    grads = [x.grad for x in inputs]
    ref_inputs = [x.detach().clone().requires_grad_() for x in inputs]
    ref_out, ref_state = gated_delta_rule_recurrent(*ref_inputs)
    (ref_out.sum() + ref_state.pow(2).sum()).backward()
    for g, x in zip(grads, ref_inputs):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
        torch.testing.assert_close(g.double(), x.grad.double(), rtol=1e-4, atol=1e-5)


def _layer(seed=0, n_heads=4, n_qk_heads=2, chunk_size=8):
    torch.manual_seed(seed)
    layer = GatedDeltaNet(24, n_heads, n_qk_heads, 8, 6, conv_kernel=4, norm_eps=1e-6, chunk_size=chunk_size)
    with torch.no_grad():  # spread the decay and norm parameters away from their constant init
        layer.A_log.uniform_(-2.0, 1.0)
        layer.dt_bias.normal_()
        layer.out_norm.norm.scale.normal_(1.0, 0.2)
    return layer.eval()


def _new_cache(layer: GatedDeltaNet, batch: int) -> LinearAttentionCache:
    return LinearAttentionCache([0], batch, layer.conv_dim, layer.conv_kernel, layer.n_heads, layer.qk_head_dim,
                                layer.v_head_dim)


@pytest.mark.parametrize("prefill", [1, 2, 9])
def test_cached_decode_equals_full_sequence(prefill):
    layer = _layer()
    x = torch.randn(2, 21, 24)
    with torch.no_grad():
        full = layer(x)
        cache = _new_cache(layer, 2)
        parts = [layer(x[:, :prefill], cache=cache)]
        parts += [layer(x[:, i : i + 1], cache=cache) for i in range(prefill, 21)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)


def test_left_padding_writes_nothing():
    layer = _layer()
    x = torch.randn(1, 10, 24)
    padded = torch.cat([torch.randn(1, 3, 24), x], dim=1)
    mask = torch.tensor([[0, 0, 0] + [1] * 10])
    with torch.no_grad():
        alone, with_pad = layer(x), layer(padded, attention_mask=mask)
    torch.testing.assert_close(with_pad[:, 3:], alone, rtol=1e-5, atol=1e-5)


def test_cache_reset_and_size():
    layer = _layer()
    cache = _new_cache(layer, 2)
    before = cache.nbytes()
    with torch.no_grad():
        layer(torch.randn(2, 30, 24), cache=cache)
    assert cache.nbytes() == before == 2 * (layer.conv_dim * 3 + 4 * 6 * 8) * 4
    cache.reset()
    assert not cache.recurrent_states[0].any() and not cache.conv_states[0].any()


# --- equality with transformers -------------------------------------------------------------------------------


def _hf_config(module):
    return module.Qwen3NextConfig(
        hidden_size=24, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8,
        linear_value_head_dim=6, linear_conv_kernel_dim=4, rms_norm_eps=1e-6, num_hidden_layers=1,
        layer_types=["linear_attention"], num_attention_heads=2, num_key_value_heads=1, head_dim=8,
        vocab_size=32, num_experts=0, intermediate_size=16,
    )


def _copy_from_qwen3_next(ours: GatedDeltaNet, hf) -> None:
    """Qwen3-Next fuses q/k/v/z (and b/a) grouped per query/key head: [q_g, k_g, v_g..., z_g...] for head g."""
    nk, dk, dv, r = ours.n_qk_heads, ours.qk_head_dim, ours.v_head_dim, ours.n_heads // ours.n_qk_heads
    qkvz = hf.in_proj_qkvz.weight.view(nk, 2 * dk + 2 * r * dv, -1)  # (qk heads, rows per group, d_in)
    q, k, v, z = qkvz.split([dk, dk, r * dv, r * dv], dim=1)
    b, a = hf.in_proj_ba.weight.view(nk, 2 * r, -1).split([r, r], dim=1)
    with torch.no_grad():
        ours.W_qkv.weight.copy_(torch.cat([x.flatten(0, 1) for x in (q, k, v)]))
        ours.W_z.weight.copy_(z.flatten(0, 1))
        ours.W_beta.weight.copy_(b.flatten(0, 1))
        ours.W_alpha.weight.copy_(a.flatten(0, 1))
        for name_ours, t in [("conv.weight", hf.conv1d.weight), ("A_log", hf.A_log), ("dt_bias", hf.dt_bias),
                             ("out_norm.norm.scale", hf.norm.weight), ("out_proj.weight", hf.out_proj.weight)]:
            ours.get_parameter(name_ours).copy_(t)


def _hf_layer(seed=1):
    module = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")
    config = _hf_config(pytest.importorskip("transformers"))
    torch.manual_seed(seed)
    hf = module.Qwen3NextGatedDeltaNet(config, layer_idx=0).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.3)
        hf.A_log.uniform_(-2.0, 1.0)
        hf.norm.weight.normal_(1.0, 0.2)
    return config, hf


@pytest.mark.parametrize("t", [5, 70])
def test_layer_equals_transformers_prefill(t):
    _, hf = _hf_layer()
    ours = _layer(chunk_size=64)
    _copy_from_qwen3_next(ours, hf)
    x = torch.randn(2, t, 24)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x), rtol=1e-5, atol=1e-5)


def test_layer_matches_transformers_bit_for_bit_in_bfloat16():
    # the same casts in the same places (float32 normalization, decay and delta rule; bf16 projections)
    _, hf = _hf_layer()
    ours = _layer(chunk_size=64)
    _copy_from_qwen3_next(ours, hf)
    hf, ours = hf.to(torch.bfloat16), ours.to(torch.bfloat16)
    x = torch.randn(2, 70, 24).to(torch.bfloat16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x), rtol=0, atol=0)


def test_layer_equals_transformers_step_by_step_decode():
    transformers = pytest.importorskip("transformers")
    config, hf = _hf_layer()
    ours = _layer(chunk_size=64)
    _copy_from_qwen3_next(ours, hf)
    x = torch.randn(2, 12, 24)
    hf_cache = transformers.DynamicCache(config=config)
    cache = _new_cache(ours, 2)
    with torch.no_grad():
        theirs = [hf(x[:, :5], cache=hf_cache)] + [hf(x[:, i : i + 1], cache=hf_cache) for i in range(5, 12)]
        mine = [ours(x[:, :5], cache=cache)] + [ours(x[:, i : i + 1], cache=cache) for i in range(5, 12)]
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # the state itself: transformers stores it as (key_dim, value_dim), the transpose of ours
    their_state = hf_cache.get_recurrent_state(0, state_idx=0)  # (batch, heads, key_dim, value_dim)
    torch.testing.assert_close(cache.recurrent_states[0], their_state.transpose(-1, -2), rtol=1e-5, atol=1e-5)


def test_layer_equals_transformers_qwen3_5():
    module = pytest.importorskip("transformers.models.qwen3_5.modeling_qwen3_5")
    config = pytest.importorskip("transformers").Qwen3_5TextConfig(
        hidden_size=24, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8,
        linear_value_head_dim=6, linear_conv_kernel_dim=4, rms_norm_eps=1e-6, num_hidden_layers=1,
        layer_types=["linear_attention"], num_attention_heads=2, num_key_value_heads=1, head_dim=8, vocab_size=32,
    )
    torch.manual_seed(2)
    hf = module.Qwen3_5GatedDeltaNet(config, layer_idx=0).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.3)
        hf.A_log.uniform_(-2.0, 1.0)
    ours = _layer(chunk_size=64)
    with torch.no_grad():  # Qwen3.5 keeps the projections apart, in our order: plain copies
        for name_ours, t in [("W_qkv.weight", hf.in_proj_qkv.weight), ("W_z.weight", hf.in_proj_z.weight),
                             ("W_beta.weight", hf.in_proj_b.weight), ("W_alpha.weight", hf.in_proj_a.weight),
                             ("conv.weight", hf.conv1d.weight), ("A_log", hf.A_log), ("dt_bias", hf.dt_bias),
                             ("out_norm.norm.scale", hf.norm.weight), ("out_proj.weight", hf.out_proj.weight)]:
            ours.get_parameter(name_ours).copy_(t)
    x = torch.randn(2, 9, 24)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x), rtol=1e-5, atol=1e-5)
