"""Turn a :class:`ModelConfig` into the shared blocks it names (norm, feed-forward, attention, KV cache)."""

from __future__ import annotations

import torch
from torch import nn

from ..nn import (
    FeedForward,
    GroupedQueryAttention,
    KVCache,
    KVCacheBase,
    LayerNorm,
    MoEFeedForward,
    MultiHeadLatentAttention,
    RingKVCache,
    RMSNorm,
    SwiGLU,
)
from ..nn.deltanet import GatedDeltaNet
from ..nn.hybrid_cache import HybridCache
from ..nn.linear_state_cache import LinearAttentionCache
from ..nn.mla import yarn_mscale
from .config import ModelConfig


def make_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "layernorm":
        return LayerNorm(cfg.emb_dim, eps=cfg.norm_eps)
    return RMSNorm(cfg.emb_dim, eps=cfg.norm_eps, unit_offset=cfg.norm_unit_offset)


def make_ffn(cfg: ModelConfig, layer: int = 0) -> nn.Module:
    # MoE models may keep dense SwiGLU blocks in their first layers (DeepSeek's first_k_dense_replace)
    if cfg.moe is not None and layer >= cfg.moe.first_dense_layers:
        return MoEFeedForward(cfg.emb_dim, cfg.moe)
    if cfg.ffn in ("swiglu", "geglu"):
        activation = "silu" if cfg.ffn == "swiglu" else "gelu_tanh"
        return SwiGLU(cfg.emb_dim, cfg.hidden_dim, bias=cfg.ffn_bias, activation=activation)
    return FeedForward(cfg.emb_dim, cfg.hidden_dim, activation=cfg.ffn, bias=cfg.ffn_bias)


def make_attention(cfg: ModelConfig, layer: int) -> nn.Module:
    if cfg.is_linear(layer):
        la = cfg.linear_attn
        return GatedDeltaNet(cfg.emb_dim, la.n_heads, la.n_qk_heads, la.qk_head_dim, la.v_head_dim,
                             conv_kernel=la.conv_kernel, norm_eps=cfg.norm_eps)
    if cfg.mla is not None:
        scale = cfg.mla.qk_head_dim**-0.5
        if cfg.rope_scaling is not None and cfg.mla.mscale_all_dim:
            # YaRN checkpoints sharpen the softmax by mscale**2 (DeepSeek-V3: 1.3689**2)
            scale *= yarn_mscale(cfg.rope_scaling.factor, cfg.mla.mscale_all_dim) ** 2
        return MultiHeadLatentAttention(cfg.emb_dim, cfg.n_heads, cfg.mla, norm_eps=cfg.norm_eps, softmax_scale=scale)
    return GroupedQueryAttention(
        cfg.emb_dim,
        cfg.n_heads,
        cfg.resolved_kv_groups,
        cfg.resolved_head_dim,
        qkv_bias=cfg.qkv_bias,
        out_bias=cfg.out_bias,
        qk_norm_eps=cfg.norm_eps if cfg.qk_norm else None,
        sliding_window=cfg.layer_window(layer),
        drop_rate=cfg.drop_rate,
        qk_norm_scope=cfg.qk_norm_scope,
        qk_norm_unit_offset=cfg.norm_unit_offset,
        softmax_scale=None if cfg.query_pre_attn_scalar is None else cfg.query_pre_attn_scalar**-0.5,
        output_gate=cfg.attn_output_gate,
        sinks=cfg.attn_sinks,
    )


def make_cache(
    cfg: ModelConfig, batch_size: int, max_length: int, *, dtype: torch.dtype, device: torch.device | str
) -> KVCacheBase:
    """The KV cache a model with ``cfg`` needs for ``batch_size`` rows of up to ``max_length`` tokens.

    * latent attention caches one latent (``kv_lora_rank``) and one shared RoPE key per token;
    * a model with sliding-window layers gets a ring buffer of ``window`` tokens for each of those layers;
    * a hybrid model with linear-attention layers gets keys and values for its full layers and a fixed-size
      state for each linear layer (:class:`HybridCache`);
    * otherwise every layer keeps ``max_length`` keys and values.
    """
    if cfg.mla is not None:
        return KVCache(cfg.n_layers, batch_size, 1, cfg.mla.kv_lora_rank, max_length, dtype=dtype, device=device,
                       value_dim=cfg.mla.qk_rope_head_dim)
    windows = [cfg.layer_window(i) for i in range(cfg.n_layers)]
    shape = (batch_size, cfg.resolved_kv_groups, cfg.resolved_head_dim, max_length)
    linear = [i for i in range(cfg.n_layers) if cfg.is_linear(i)]
    if linear:
        la = cfg.linear_attn
        states = LinearAttentionCache(linear, batch_size, 2 * la.n_qk_heads * la.qk_head_dim + la.n_heads * la.v_head_dim,
                                      la.conv_kernel, la.n_heads, la.qk_head_dim, la.v_head_dim, dtype=dtype,
                                      device=device)
        full = [i for i in range(cfg.n_layers) if i not in linear]
        return HybridCache(full, states, *shape, dtype=dtype, device=device)
    if any(w is not None and w < max_length for w in windows):
        return RingKVCache(windows, *shape, dtype=dtype, device=device)
    return KVCache(cfg.n_layers, *shape, dtype=dtype, device=device)
