"""Causal (or bidirectional) multi-head attention with grouped key/value heads.

``n_kv_groups`` is the number of key/value heads; each serves ``n_heads // n_kv_groups`` query heads:

* ``n_kv_groups == n_heads``: classic multi-head attention (GPT-2, Llama 2 7B, BERT);
* ``1 < n_kv_groups < n_heads``: grouped-query attention (Llama 3, Qwen3);
* ``n_kv_groups == 1``: multi-query attention.

Options that families switch on: biases on the q/k/v and output projections, RMSNorm on each query and key
head before RoPE (Qwen3's "QK-norm") or over the whole query and key projections (OLMo 2/3), a sliding window
(a query sees only the last ``W`` keys), a softmax scale other than ``1/sqrt(head_dim)`` (Gemma 3's
``query_pre_attn_scalar``), and an output gate (Qwen3-Next: the query projection also emits a gate per head
feature, and the attention output is multiplied by its sigmoid before ``out_proj``), and attention sinks
(gpt-oss: one learned logit per head joins every softmax denominator, as if each query also saw a key with that
score and a zero value, so a head can put weight on "nothing" instead of on the first tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .kv_cache import KVCacheBase
from .norms import RMSNorm
from .rope import apply_rope


def build_attention_mask(
    n_queries: int,
    key_valid: torch.Tensor,
    *,
    causal: bool = True,
    sliding_window: int | None = None,
    key_slots: torch.Tensor | None = None,
) -> torch.Tensor:
    """Boolean mask (batch, 1, queries, keys), True where a query may attend to a key.

    ``key_valid`` (batch, keys) marks real tokens (False = padding). Queries are the last ``n_queries`` key
    slots. A key is visible if it is valid, not in the future (causal) and, with a window ``W``, one of the
    last ``W`` slots up to and including the query. Every query also sees itself, so a padding query never
    has an empty row (its output is ignored, but an empty row would put NaNs into the batch).
    ``key_slots`` (keys,) gives each key's absolute slot when the keys are not simply slots 0, 1, ... (a
    ring-buffer cache returns its ring first, then the new tokens).
    """
    n_keys = key_valid.shape[1]
    if key_slots is None:
        key_slots = torch.arange(n_keys, device=key_valid.device)
    q_slots = key_slots[-n_queries:][:, None]  # (queries, 1)
    k_slots = key_slots[None, :]  # (1, keys)
    allowed = torch.ones(n_queries, n_keys, dtype=torch.bool, device=key_valid.device)
    if causal:
        allowed = k_slots <= q_slots
    if sliding_window is not None:
        allowed = allowed & (q_slots - k_slots < sliding_window)
    mask = allowed[None] & key_valid[:, None, :]  # (batch, queries, keys)
    mask = mask | (k_slots == q_slots)[None]
    return mask[:, None]  # (batch, 1, queries, keys): broadcast over heads


class GroupedQueryAttention(nn.Module):
    def __init__(
        self,
        d_in: int,
        n_heads: int,
        n_kv_groups: int,
        head_dim: int,
        *,
        qkv_bias: bool = False,
        out_bias: bool = False,
        qk_norm_eps: float | None = None,
        sliding_window: int | None = None,
        drop_rate: float = 0.0,
        rope_interleaved: bool = False,
        qk_norm_scope: str = "head",
        qk_norm_unit_offset: bool = False,
        softmax_scale: float | None = None,
        output_gate: bool = False,
        sinks: bool = False,
    ) -> None:
        """``qk_norm_scope``: "head" normalizes each head's ``head_dim`` features, "projection" the whole query
        (``n_heads * head_dim``) and key (``n_kv_groups * head_dim``) projections. ``softmax_scale`` multiplies
        the scores (None: ``head_dim ** -0.5``). ``output_gate``: ``W_query`` emits ``[query | gate]`` per head
        (the checkpoint's layout), and the output is ``out_proj(attention * sigmoid(gate))``. ``sinks``: a learned
        logit per query head (``self.sinks``) that joins each softmax's denominator and contributes no value."""
        super().__init__()
        if n_heads % n_kv_groups:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_groups ({n_kv_groups})")
        self.n_heads = n_heads
        self.n_kv_groups = n_kv_groups
        self.head_dim = head_dim
        self.sliding_window = sliding_window
        self.drop_rate = drop_rate
        self.rope_interleaved = rope_interleaved
        self.softmax_scale = softmax_scale  # None: SDPA's own 1/sqrt(head_dim), left to it bit for bit
        self.output_gate = output_gate
        self.W_query = nn.Linear(d_in, n_heads * head_dim * (2 if output_gate else 1), bias=qkv_bias)
        self.W_key = nn.Linear(d_in, n_kv_groups * head_dim, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, n_kv_groups * head_dim, bias=qkv_bias)
        self.out_proj = nn.Linear(n_heads * head_dim, d_in, bias=out_bias)
        self.sinks = nn.Parameter(torch.zeros(n_heads)) if sinks else None
        if qk_norm_scope not in ("head", "projection"):
            raise ValueError(f"qk_norm_scope must be 'head' or 'projection', got {qk_norm_scope!r}")
        self.qk_norm_scope = qk_norm_scope
        if qk_norm_eps is not None:
            per_head = qk_norm_scope == "head"
            q_dim, k_dim = (head_dim, head_dim) if per_head else (n_heads * head_dim, n_kv_groups * head_dim)
            self.q_norm = RMSNorm(q_dim, eps=qk_norm_eps, unit_offset=qk_norm_unit_offset)
            self.k_norm = RMSNorm(k_dim, eps=qk_norm_eps, unit_offset=qk_norm_unit_offset)
        else:
            self.q_norm = self.k_norm = None

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: KVCacheBase | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        """``x`` (batch, tokens, d_in) -> (batch, tokens, d_in).

        ``mask`` comes from :func:`build_attention_mask`; ``None`` means plain causal attention over exactly
        these tokens (or, with one query token, everything in the cache).
        """
        b, t, _ = x.shape
        q, k, v = self.W_query(x), self.W_key(x), self.W_value(x)
        gate = None
        if self.output_gate:
            # (batch, tokens, heads * 2 * head_dim) -> query and gate, each (batch, tokens, heads * head_dim)
            q, gate = q.view(b, t, self.n_heads, 2 * self.head_dim).chunk(2, dim=-1)
            q, gate = q.reshape(b, t, -1), gate.reshape(b, t, -1)
        if self.q_norm is not None and self.qk_norm_scope == "projection":
            q, k = self.q_norm(q), self.k_norm(k)  # over all heads at once, before splitting them
        # (batch, tokens, heads * head_dim) -> (batch, heads, tokens, head_dim)
        q = q.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.n_kv_groups, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.n_kv_groups, self.head_dim).transpose(1, 2)
        if self.q_norm is not None and self.qk_norm_scope == "head":
            q, k = self.q_norm(q), self.k_norm(k)  # normalize per head, before the rotation
        if rope is not None:
            cos, sin = rope
            q = apply_rope(q, cos, sin, interleaved=self.rope_interleaved)
            k = apply_rope(k, cos, sin, interleaved=self.rope_interleaved)
        if cache is not None:
            k, v = cache.write(layer, k, v)  # (batch, n_kv_groups, cached tokens, head_dim)
        if t == 1 and not (self.training and self.drop_rate > 0):
            out = _decode_attention(q, k, v, mask, self.softmax_scale, self.sinks)
        else:
            out = self._sdpa(q, k, v, mask)
        out = out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)  # (batch, tokens, heads*head_dim)
        if gate is not None:
            out = out * torch.sigmoid(gate)
        return self.out_proj(out)

    def _sdpa(self, q, k, v, mask):
        if self.n_kv_groups != self.n_heads:
            # each kv head serves a contiguous block of query heads
            repeats = self.n_heads // self.n_kv_groups
            k = k.repeat_interleave(repeats, dim=1)  # (batch, heads, keys, head_dim)
            v = v.repeat_interleave(repeats, dim=1)
        dropout = self.drop_rate if self.training else 0.0
        if self.sinks is not None:
            q, k, v, mask = _with_sink_key(q, k, v, mask, self.sinks, self.softmax_scale)
        if mask is None:
            is_causal = q.shape[2] > 1
            if is_causal and q.shape[2] != k.shape[2]:
                raise ValueError("a mask is required when several new tokens attend to a cache prefix")
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=is_causal,
                                                  scale=self.softmax_scale)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=self.softmax_scale)


def _with_sink_key(q, k, v, mask, sinks, scale):
    """SDPA has no sink argument, so the sink becomes one more key: a zero key (its dot product with any query
    is 0) whose score comes entirely from an additive float mask holding each head's sink logit, and a zero
    value, so it takes its share of the softmax and adds nothing to the output. ``scale`` does not touch the
    mask, which SDPA adds after scaling. Returns q, k, v and the float mask (batch, heads, queries, keys + 1)."""
    b, h, t, d = q.shape
    n_keys = k.shape[2]
    if mask is None:  # plain causal attention over exactly these tokens (or one query over the whole cache)
        mask = torch.ones(t, n_keys, dtype=torch.bool, device=q.device).tril(n_keys - t)[None, None]
    bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, float("-inf"))
    bias = bias.expand(b, h, t, n_keys)
    sink = sinks.to(q.dtype).view(1, h, 1, 1).expand(b, h, t, 1)
    zeros = k.new_zeros(b, k.shape[1], 1, d)
    return q, torch.cat([k, zeros], dim=2), torch.cat([v, zeros], dim=2), torch.cat([bias, sink], dim=-1)


def _decode_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float | None = None,
    sinks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention for a single new token, written out: two small matmuls beat the blocked SDPA kernels, whose
    setup cost dominates when there is one query. The query heads that share a key/value head become the rows
    of one matmul against that head's keys, so the cache is read once per kv head and never expanded (a
    broadcast against ``k.unsqueeze(2)`` materialises a copy of the keys per query head at long contexts)."""
    b, h, _, d = q.shape
    kv = k.shape[1]
    q = q.view(b, kv, h // kv, d)  # (batch, kv heads, queries per kv head, head_dim)
    scores = (q @ k.transpose(-1, -2)) * (d**-0.5 if scale is None else scale)  # (batch, kv, group, keys)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # mask: (batch, 1, 1, keys)
    if sinks is not None:
        # one more column per query head: its sink logit, which joins the softmax and is then dropped
        sink = sinks.to(scores.dtype).view(1, kv, h // kv, 1).expand(b, kv, h // kv, 1)
        weights = torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1, dtype=torch.float32)[..., :-1]
        return (weights.to(v.dtype) @ v).view(b, h, 1, d)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    return (weights @ v).view(b, h, 1, d)  # (batch, kv, group, head_dim) -> (batch, heads, 1, head_dim)
