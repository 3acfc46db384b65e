"""Llama 3 with a KV cache: the model of ``llms_from_scratch.llama3``, able to continue from cached keys and values.

Without a cache, generating token ``t`` recomputes the keys and values of all ``t - 1`` earlier tokens, although
they never change (a token only attends to its past). With a cache, each forward pass computes keys and values
for its new tokens only and appends them to a :class:`~llms_from_scratch.kv_cache.utils.KVCache`, one slot per
layer, created by the caller:

>>> cache = KVCache(n_layers=model.cfg["n_layers"])
>>> logits = model(prompt_ids, cache=cache)   # fills the cache
>>> logits = model(next_id, cache=cache)      # one new token, attending to everything cached

The parameters are those of ``llama3.Llama3Model``, so the same state dict and ``load_weights_into_llama``
work. Everything that does not touch the cache (configs, feed-forward, RoPE, tokenizer, loader and the
uncached ``*Fast`` classes) is imported from ``llama3`` unchanged.
"""

from __future__ import annotations

import torch

from .. import llama3
from ..llama3 import (  # noqa: F401  (re-exported: the book imports these from kv_cache.llama3 too)
    LLAMA32_CONFIG_1B,
    LLAMA32_CONFIG_3B,
    ChatFormat,
    FeedForward,
    GroupedQueryAttentionFast,
    Llama3ModelFast,
    Llama3Tokenizer,
    TransformerBlockFast,
    apply_rope,
    assign,
    clean_text,
    compute_rope_params,
    load_weights_into_llama,
    rescale_theta,
)
from .qwen3 import check_context_length
from .utils import KVCache

__all__ = [
    "LLAMA32_CONFIG_1B",
    "LLAMA32_CONFIG_3B",
    "FeedForward",
    "GroupedQueryAttention",
    "TransformerBlock",
    "Llama3Model",
    "compute_rope_params",
    "rescale_theta",
    "apply_rope",
    "GroupedQueryAttentionFast",
    "TransformerBlockFast",
    "Llama3ModelFast",
    "Llama3Tokenizer",
    "ChatFormat",
    "clean_text",
    "assign",
    "load_weights_into_llama",
    "KVCache",
]

KVPair = tuple[torch.Tensor, torch.Tensor]


class GroupedQueryAttention(llama3.GroupedQueryAttention):
    """Grouped-query attention that prepends the cached keys and values of earlier positions."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                start_pos: int = 0, cache: KVPair | None = None) -> tuple[torch.Tensor, KVPair]:
        """Attend from the tokens of ``x`` (at positions ``start_pos`` onward) to ``cache`` plus themselves.

        Returns the output and this layer's new cache entry: all keys and values so far, each of shape
        (batch, num_kv_groups, start_pos + num_tokens, head_dim). The cache stores the ``num_kv_groups`` heads,
        before they are repeated for the query heads: that is GQA's memory saving.
        """
        queries, keys, values = self.project(x, cos, sin, offset=start_pos)  # keys were rotated once, when new
        if cache is not None:
            cached_keys, cached_values = cache
            keys = torch.cat([cached_keys, keys], dim=2)
            values = torch.cat([cached_values, values], dim=2)
        return self.attend(queries, keys, values, mask), (keys, values)


class TransformerBlock(llama3.TransformerBlock):
    """The Llama block, passing its layer's cache entry through the attention."""

    attention_class = GroupedQueryAttention

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                start_pos: int = 0, cache: KVPair | None = None) -> tuple[torch.Tensor, KVPair]:
        shortcut = x
        x, next_cache = self.att(self.norm1(x), mask, cos, sin, start_pos=start_pos, cache=cache)
        x = x + shortcut

        shortcut = x
        x = self.ff(self.norm2(x))
        return x + shortcut, next_cache


class Llama3Model(llama3.Llama3Model):
    """Llama3Model whose ``forward`` takes ``cache=``: a KVCache to read and extend, or None for a plain pass."""

    block_class = TransformerBlock

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.current_pos = 0  # positions seen through the cache so far

    def check_input(self, in_idx: torch.Tensor, start: int = 0) -> None:
        """As in ``llama3``, but the length limit is worded as in the other KV-cache models."""
        if in_idx.dim() == 2:
            check_context_length(start + in_idx.shape[1], self.cfg["context_length"])
        super().check_input(in_idx, start)

    def forward(self, in_idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits (batch, num_tokens, vocab_size) for ``in_idx``, which continues the tokens held in ``cache``."""
        # the cache itself says how many positions it holds, so a fresh KVCache always starts at position 0
        layer0 = cache.get(0) if cache is not None else None
        start = 0 if layer0 is None else layer0[0].shape[2]
        self.check_input(in_idx, start)
        num_tokens = in_idx.shape[1]
        end = start + num_tokens

        x = self.tok_emb(in_idx)  # (batch, num_tokens, emb_dim)
        # rows: the new tokens at positions start..end-1; columns: every position 0..end-1.
        # Row r may see columns 0..start+r, so True (hidden) starts at column start + r + 1.
        mask = torch.triu(torch.ones(num_tokens, end, dtype=torch.bool, device=x.device), diagonal=start + 1)
        for i, block in enumerate(self.trf_blocks):
            x, layer_cache = block(x, mask, self.cos, self.sin, start_pos=start,
                                   cache=cache.get(i) if cache is not None else None)
            if cache is not None:
                cache.update(i, layer_cache)
        self.current_pos = end if cache is not None else 0
        x = self.final_norm(x)
        return self.out_head(x)

    def reset_kv_cache(self) -> None:
        """Set the position counter back to 0; hand the next prompt a fresh (or ``reset()``) KVCache."""
        self.current_pos = 0
