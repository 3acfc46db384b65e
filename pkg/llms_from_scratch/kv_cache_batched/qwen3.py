"""Qwen3 with a KV cache for batches of left-padded prompts (the modules and weights of ``llms_from_scratch.qwen3``).

Each row has its own positions. ``start_pos[b]`` is the position of row b's first token in ``in_idx``; a row
that starts with p padding tokens starts at ``-p``, so its first real token sits at position 0, exactly where it
would sit without padding. The rule for the mask follows from positions alone: a query sees the keys at earlier
or equal positions, and a real token (position >= 0) never sees padding (position < 0). Row by row, the result
is the one that row would give on its own.
"""

from __future__ import annotations

import torch

from .. import qwen3
from ..kv_cache.qwen3 import block_forward_with_cache, check_context_length
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


class Qwen3Model(qwen3.Qwen3Model):
    """``qwen3.Qwen3Model`` whose forward pass takes per-row start positions and a per-row KVCache."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.current_pos: torch.Tensor | None = None  # (batch,) position of each row's next token

    def forward(self, in_idx: torch.Tensor, cache: KVCache | None = None,
                start_pos: torch.Tensor | None = None) -> torch.Tensor:
        """``in_idx`` (batch, num_tokens); ``start_pos`` (batch,) as in the module docstring, zeros if None."""
        batch_size, num_tokens = in_idx.shape
        device = in_idx.device
        if start_pos is None:
            start_pos = torch.zeros(batch_size, dtype=torch.long, device=device)
        positions = start_pos[:, None] + torch.arange(num_tokens, device=device)  # (batch, num_tokens)
        # every row is checked: a later row may run out of room while the first still fits
        check_context_length(int(positions.max()) + 1, self.cfg["context_length"],
                             fix="generate fewer tokens or shorten the prompts")

        cached = None if cache is None else cache.get(0, 0)
        num_cached = 0 if cached is None else cached[0].shape[2]
        # the positions of all keys: the cached ones, then the new tokens' own
        key_positions = (start_pos - num_cached)[:, None] + torch.arange(num_cached + num_tokens, device=device)
        q_pos = positions[:, None, :, None]  # (batch, 1, num_tokens, 1): broadcasts over heads and keys
        k_pos = key_positions[:, None, None, :]  # (batch, 1, 1, num_keys)
        # True = hidden. Padding queries still see earlier padding, so no row of the softmax is empty.
        mask = (k_pos > q_pos) | ((k_pos < 0) & (q_pos >= 0))

        rows = positions.clamp(min=0)  # padding's rotation does not matter: no real token attends to it
        cos, sin = self.cos[rows][:, None], self.sin[rows][:, None]  # (batch, 1, num_tokens, head_dim)
        x = self.tok_emb(in_idx)  # (batch, num_tokens, emb_dim)
        for i, block in enumerate(self.trf_blocks):
            past = None
            if cached is not None:  # join the rows' caches into one batch: (batch, n_kv_groups, cached, head_dim)
                rows_kv = cache.get_layer(i)
                past = (torch.cat([k for k, _ in rows_kv]), torch.cat([v for _, v in rows_kv]))
            x, (keys, values) = block_forward_with_cache(block, x, mask, cos, sin, past)
            if cache is not None:
                for b in range(batch_size):
                    cache.update(i, b, (keys[b : b + 1], values[b : b + 1]))
        x = self.final_norm(x)
        return self.out_head(x)

    def reset_kv_cache(self, batch_size: int, device: torch.device | str | None = None) -> None:
        """Every row starts at position 0 again (the generator moves padded rows below zero)."""
        device = device or self.tok_emb.weight.device
        self.current_pos = torch.zeros(batch_size, dtype=torch.long, device=device)
