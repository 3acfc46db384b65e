"""Turn a :class:`ModelConfig` into the shared blocks it names (norm, feed-forward, attention)."""

from __future__ import annotations

from torch import nn

from ..nn import FeedForward, GroupedQueryAttention, LayerNorm, RMSNorm, SwiGLU
from .config import ModelConfig


def make_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "layernorm":
        return LayerNorm(cfg.emb_dim, eps=cfg.norm_eps)
    return RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)


def make_ffn(cfg: ModelConfig) -> nn.Module:
    if cfg.ffn == "swiglu":
        return SwiGLU(cfg.emb_dim, cfg.hidden_dim, bias=cfg.ffn_bias)
    return FeedForward(cfg.emb_dim, cfg.hidden_dim, activation=cfg.ffn, bias=cfg.ffn_bias)


def make_attention(cfg: ModelConfig, layer: int) -> GroupedQueryAttention:
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
    )
