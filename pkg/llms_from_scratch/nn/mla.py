"""Multi-head latent attention (MLA), DeepSeek-V2/V3's answer to the size of the KV cache.

Instead of caching ``n_heads`` keys and values per token, MLA caches one small *latent* vector ``c_kv``
(``kv_lora_rank`` features, 512 in V3) plus one RoPE key shared by all heads (``qk_rope_head_dim``, 64):
576 numbers per token and layer, against 2 * 128 * 128 = 32768 for the same heads with plain MHA.

* queries: ``q = W_q_up(norm(W_q_down(x)))`` (or one ``W_query`` when ``q_lora_rank`` is None, V2-Lite),
  split per head into a position-free part (``qk_nope_head_dim``) and a rotated part (``qk_rope_head_dim``);
* keys/values: ``W_kv_down(x) = [c_kv | k_rope]``; ``c_kv`` is normed and cached; ``W_kv_up(c_kv)`` gives
  each head's ``[k_nope | v]``; ``k_rope`` is rotated once and shared by every head;
* scores use ``softmax_scale`` (YaRN checkpoints fold ``mscale**2`` into it, see :func:`yarn_mscale`).

The *absorbed* path (``absorb=True``) never materializes per-head keys and values: it multiplies the query
by ``W_uk`` (the key half of ``W_kv_up``) so it can be scored directly against the cached latents, and
applies ``W_uv`` to the attention-weighted latents. Same numbers, far less memory traffic when decoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .kv_cache import KVCacheBase
from .norms import RMSNorm
from .rope import apply_rope


@dataclass(frozen=True)
class MLAConfig:
    """The latent-attention part of a model config (DeepSeek's names in comments)."""

    kv_lora_rank: int  # latent width that is cached
    qk_nope_head_dim: int  # per-head key/query features without position
    qk_rope_head_dim: int  # rotated features (shared key)
    v_head_dim: int
    q_lora_rank: int | None = None  # None: a single full-rank query projection (DeepSeek-V2-Lite)
    rope_interleaved: bool = True  # DeepSeek rotates adjacent pairs (x0, x1), (x2, x3), ...
    mscale_all_dim: float = 0.0  # YaRN: > 0 multiplies the softmax scale by mscale**2

    def __post_init__(self) -> None:
        for name in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"invalid MLA config: {name} must be positive, got {getattr(self, name)}")
        if self.q_lora_rank is not None and self.q_lora_rank <= 0:
            raise ValueError(f"invalid MLA config: q_lora_rank must be positive or None, got {self.q_lora_rank}")
        if self.qk_rope_head_dim % 2:
            raise ValueError(f"invalid MLA config: qk_rope_head_dim must be even, got {self.qk_rope_head_dim}")

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's attention temperature ``0.1 * mscale * ln(factor) + 1`` (1 when the context is not stretched)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


class MultiHeadLatentAttention(nn.Module):
    def __init__(
        self, d_in: int, n_heads: int, cfg: MLAConfig, *, norm_eps: float = 1e-6, softmax_scale: float | None = None,
        absorb: bool = False,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.cfg = cfg
        self.absorb = absorb
        self.sliding_window = None  # the decoder asks every attention block for its window
        self.softmax_scale = softmax_scale if softmax_scale is not None else cfg.qk_head_dim**-0.5
        q_out = n_heads * cfg.qk_head_dim
        if cfg.q_lora_rank is None:
            self.W_query = nn.Linear(d_in, q_out, bias=False)
        else:
            self.W_q_down = nn.Linear(d_in, cfg.q_lora_rank, bias=False)
            self.q_norm = RMSNorm(cfg.q_lora_rank, eps=norm_eps)
            self.W_q_up = nn.Linear(cfg.q_lora_rank, q_out, bias=False)
        self.W_kv_down = nn.Linear(d_in, cfg.kv_lora_rank + cfg.qk_rope_head_dim, bias=False)
        self.kv_norm = RMSNorm(cfg.kv_lora_rank, eps=norm_eps)
        self.W_kv_up = nn.Linear(cfg.kv_lora_rank, n_heads * (cfg.qk_nope_head_dim + cfg.v_head_dim), bias=False)
        self.out_proj = nn.Linear(n_heads * cfg.v_head_dim, d_in, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: KVCacheBase | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        """``x`` (batch, tokens, d_in) -> (batch, tokens, d_in); same contract as ``GroupedQueryAttention``."""
        c = self.cfg
        b, t, _ = x.shape
        q = self.W_query(x) if c.q_lora_rank is None else self.W_q_up(self.q_norm(self.W_q_down(x)))
        q = q.view(b, t, self.n_heads, c.qk_head_dim).transpose(1, 2)  # (batch, heads, tokens, qk_head_dim)
        q_nope, q_rope = q.split([c.qk_nope_head_dim, c.qk_rope_head_dim], dim=-1)
        latent, k_rope = self.W_kv_down(x).split([c.kv_lora_rank, c.qk_rope_head_dim], dim=-1)
        latent = self.kv_norm(latent)[:, None]  # (batch, 1, tokens, kv_lora_rank): one "head"
        k_rope = k_rope[:, None]  # (batch, 1, tokens, qk_rope_head_dim): shared by all heads
        if rope is not None:
            cos, sin = rope
            q_rope = apply_rope(q_rope, cos, sin, interleaved=c.rope_interleaved)
            k_rope = apply_rope(k_rope, cos, sin, interleaved=c.rope_interleaved)
        if cache is not None:
            latent, k_rope = cache.write(layer, latent, k_rope)  # the cache holds only these two
        if mask is None and t > 1:
            if t != latent.shape[2]:
                raise ValueError("a mask is required when several new tokens attend to a cache prefix")
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        out = self._absorbed(q_nope, q_rope, latent, k_rope, mask) if self.absorb else (
            self._naive(q_nope, q_rope, latent, k_rope, mask))
        out = out.transpose(1, 2).reshape(b, t, self.n_heads * c.v_head_dim)  # (batch, tokens, heads*v_head_dim)
        return self.out_proj(out)

    def _naive(self, q_nope, q_rope, latent, k_rope, mask):
        """Expand the latents into per-head keys and values, then attend as usual."""
        c = self.cfg
        b, _, n_keys, _ = latent.shape
        kv = self.W_kv_up(latent[:, 0]).view(b, n_keys, self.n_heads, c.qk_nope_head_dim + c.v_head_dim)
        k_nope, v = kv.transpose(1, 2).split([c.qk_nope_head_dim, c.v_head_dim], dim=-1)  # (batch, heads, keys, .)
        k = torch.cat([k_nope, k_rope.expand(-1, self.n_heads, -1, -1)], dim=-1)
        q = torch.cat([q_nope, q_rope], dim=-1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.softmax_scale)

    def _absorbed(self, q_nope, q_rope, latent, k_rope, mask):
        """Score queries against the cached latents directly (``W_uk`` folded into the query)."""
        c = self.cfg
        w = self.W_kv_up.weight.view(self.n_heads, c.qk_nope_head_dim + c.v_head_dim, c.kv_lora_rank)
        w_uk, w_uv = w.split([c.qk_nope_head_dim, c.v_head_dim], dim=1)  # (heads, nope, rank), (heads, v, rank)
        q_latent = torch.einsum("bhtn,hnr->bhtr", q_nope, w_uk)  # (batch, heads, tokens, kv_lora_rank)
        scores = q_latent @ latent.transpose(-2, -1) + q_rope @ k_rope.transpose(-2, -1)  # (batch, heads, q, keys)
        scores = scores * self.softmax_scale
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1, dtype=torch.float32).to(q_nope.dtype)
        out_latent = weights @ latent  # (batch, heads, tokens, kv_lora_rank)
        return torch.einsum("bhtr,hvr->bhtv", out_latent, w_uv)  # (batch, heads, tokens, v_head_dim)
