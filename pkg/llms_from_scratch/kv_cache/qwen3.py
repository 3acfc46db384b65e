"""Qwen3 with a KV cache: the modules and weights of ``llms_from_scratch.qwen3``, a forward pass that reuses keys
and values.

Without a cache, generating token n+1 recomputes the keys and values of all n earlier tokens in every layer.
With one, each layer keeps its keys and values in a :class:`~llms_from_scratch.kv_cache.utils.KVCache`; a step
feeds only the new tokens, appends their keys and values, and lets the new queries attend to everything kept.

The model counts how many positions it has seen (``current_pos``) so that RoPE rotates new tokens by their true
positions; ``reset_kv_cache()`` sets the count back to zero, and a new prompt needs a new (or reset) KVCache.
"""

from __future__ import annotations

import torch

from .. import qwen3
from ..qwen3 import (  # noqa: F401  (the unchanged pieces, importable from here as in the book)
    QWEN3_CONFIG_1_7B,
    QWEN3_CONFIG_4B,
    QWEN3_CONFIG_8B,
    QWEN3_CONFIG_14B,
    QWEN3_CONFIG_30B_A3B,
    QWEN3_CONFIG_32B,
    QWEN_CONFIG_06_B,
    FeedForward,
    GroupedQueryAttention,
    MoEFeedForward,
    Qwen3Tokenizer,
    RMSNorm,
    TransformerBlock,
    apply_rope,
    compute_rope_params,
    download_from_huggingface,
    download_from_huggingface_from_snapshots,
    load_weights_into_qwen,
)
from .utils import KVCache


def check_context_length(num_positions: int, context_length: int, fix: str | None = None) -> None:
    """Refuse, before anything changes, a pass whose tokens would reach past the RoPE tables."""
    if num_positions > context_length:
        fix = fix or (f"call reset_kv_cache() to start a new sequence, or keep only the last {context_length} "
                      f"tokens")
        raise ValueError(f"Sequence length {num_positions} exceeds the context length of {context_length} tokens; "
                         f"{fix}")


def block_forward_with_cache(block: TransformerBlock, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor,
                             sin: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None):
    """``block(x, mask, cos, sin)`` for new tokens only, attending to ``past`` keys and values as well.

    ``past`` is the layer's cached ``(keys, values)``, each (batch, n_kv_groups, cached_tokens, head_dim), or None.
    Returns the block's output and the keys and values to cache, now including the new tokens.
    """
    shortcut = x
    queries, keys, values = block.att.project_qkv(block.norm1(x), cos, sin)
    if past is not None:
        keys = torch.cat([past[0], keys], dim=2)  # (batch, n_kv_groups, cached + new tokens, head_dim)
        values = torch.cat([past[1], values], dim=2)
    x = block.att.attend(queries, keys, values, mask) + shortcut
    x = block.ff(block.norm2(x)) + x
    return x, (keys, values)


class Qwen3Model(qwen3.Qwen3Model):
    """``qwen3.Qwen3Model`` whose forward pass takes ``cache=``: with a KVCache, ``in_idx`` holds only the tokens
    that follow those already cached."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.current_pos = 0  # positions seen since the last reset_kv_cache()

    def forward(self, in_idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        num_tokens = in_idx.shape[1]
        if cache is None:  # no cache: the plain forward pass over the whole sequence, from position 0
            check_context_length(num_tokens, self.cfg["context_length"])
            return super().forward(in_idx)
        pos_start, pos_end = self.current_pos, self.current_pos + num_tokens
        check_context_length(pos_end, self.cfg["context_length"])
        self.current_pos = pos_end

        x = self.tok_emb(in_idx)  # (batch, num_tokens, emb_dim)
        # new token i sits at position pos_start + i and may see the keys at positions 0 .. pos_start + i
        mask = torch.triu(torch.ones(num_tokens, pos_end, device=x.device, dtype=torch.bool), diagonal=pos_start + 1)
        cos, sin = self.cos[pos_start:pos_end], self.sin[pos_start:pos_end]  # the new tokens' rotations
        for i, block in enumerate(self.trf_blocks):
            x, keys_values = block_forward_with_cache(block, x, mask, cos, sin, cache.get(i))
            cache.update(i, keys_values)
        x = self.final_norm(x)
        return self.out_head(x)

    def reset_kv_cache(self) -> None:
        """Start counting positions from zero again (use a fresh or reset KVCache with it)."""
        self.current_pos = 0
