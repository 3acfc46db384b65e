"""Chapter 4's GPT with a KV cache: each attention layer keeps the keys and values it has already computed.

This is the code that ``ch04/03_kv-cache/kv-cache.ipynb`` builds step by step. Compared with ``ch04.GPTModel``:

- ``MultiHeadAttention`` appends the new tokens' keys and values to its cache and lets the new queries attend
  to everything cached (``forward(x, use_cache=True)``); ``reset_cache()`` empties it;
- ``GPTModel`` numbers the new tokens' positions after the cached ones and has ``reset_kv_cache()``;
- ``generate_text_simple_cached`` feeds the prompt once, then one token per step.

``LayerNorm``, ``GELU`` and ``FeedForward`` are the chapter's, unchanged. The modules are created in the
chapter's order and the state dict has the chapter's keys, so ``ch04.GPTModel`` weights load as they are
(and the same seed gives the same weights). The cache is not part of the state dict.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from llms_from_scratch.ch03 import MultiHeadAttention as ChapterMultiHeadAttention
from llms_from_scratch.ch04 import GELU, FeedForward, LayerNorm

from .utils import KVCache

__all__ = [
    "MultiHeadAttention",
    "LayerNorm",
    "GELU",
    "FeedForward",
    "TransformerBlock",
    "GPTModel",
    "generate_text_simple_cached",
    "KVCache",
]


def check_context_length(num_positions: int, context_length: int) -> None:
    if num_positions > context_length:
        raise ValueError(
            f"Sequence length {num_positions} exceeds the context length of {context_length} tokens; "
            f"call reset_kv_cache() to start a new sequence, or keep only the last {context_length} tokens"
        )


class MultiHeadAttention(ChapterMultiHeadAttention):
    """Chapter 3's multi-head attention, plus a cache of the keys and values of every token seen so far."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias)
        # buffers follow the module to a device; persistent=False keeps the cache out of the state dict
        self.register_buffer("cache_k", None, persistent=False)
        self.register_buffer("cache_v", None, persistent=False)

    @property
    def cached_tokens(self) -> int:
        return 0 if self.cache_k is None else self.cache_k.shape[2]

    def forward(self, x: torch.Tensor, use_cache: bool = False) -> torch.Tensor:
        b, num_tokens, d_in = x.shape
        past = self.cached_tokens if use_cache else 0  # tokens that come before x in the sequence
        check_context_length(past + num_tokens, self.context_length)

        # (b, num_tokens, d_out) -> (b, num_tokens, num_heads, head_dim) -> (b, num_heads, num_tokens, head_dim)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        if use_cache:
            # an earlier token never attends to a later one, so its key and value never change: compute them
            # once, and let the new queries attend to the cached ones as well
            if self.cache_k is not None:
                keys = torch.cat([self.cache_k, keys], dim=2)  # (b, num_heads, past + num_tokens, head_dim)
                values = torch.cat([self.cache_v, values], dim=2)
            self.cache_k, self.cache_v = keys, values

        attn_scores = queries @ keys.transpose(2, 3)  # (b, num_heads, num_tokens, past + num_tokens)
        # the queries sit at positions past ... past + num_tokens - 1: take those rows of the causal mask
        mask_bool = self.mask[past:past + num_tokens, :past + num_tokens].bool()
        attn_scores.masked_fill_(mask_bool, -torch.inf)

        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        context_vec = (attn_weights @ values).transpose(1, 2)  # (b, num_tokens, num_heads, head_dim)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)

    def reset_cache(self) -> None:
        self.cache_k, self.cache_v = None, None


class TransformerBlock(nn.Module):
    """Chapter 4's block; the only change is that ``use_cache`` is passed on to the attention layer."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor, use_cache: bool = False) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        x = self.att(x, use_cache=use_cache)  # (batch, num_tokens, emb_dim)
        x = self.drop_shortcut(x)
        x = x + shortcut

        shortcut = x
        x = self.norm2(x)
        x = self.ff(x)
        x = self.drop_shortcut(x)
        x = x + shortcut
        return x


class GPTModel(nn.Module):
    """Chapter 4's GPT whose ``forward(in_idx, use_cache=True)`` continues the cached sequence."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        # a ModuleList rather than nn.Sequential, because each block is called with use_cache
        self.trf_blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        self.current_pos = 0  # tokens in the cache after the last pass: the position of the next token

    def forward(self, in_idx: torch.Tensor, use_cache: bool = False, cache: KVCache | None = None) -> torch.Tensor:
        """Next-token logits ``(batch, num_tokens, vocab_size)`` for token ids ``(batch, num_tokens)``.

        With ``use_cache=True`` the tokens continue the sequence held in the cache. ``cache`` serves the
        generation functions of ``kv_cache.generate``, which keep each layer's keys and values in a
        :class:`KVCache` of their own: the layers start from its entries and write theirs back.
        """
        if cache is not None:
            use_cache = True
            for i, block in enumerate(self.trf_blocks):
                block.att.cache_k, block.att.cache_v = cache.get(i) or (None, None)

        batch_size, seq_len = in_idx.shape
        # the cache itself says how many tokens come before in_idx, so the count cannot drift out of step with it
        past = self.trf_blocks[0].att.cached_tokens if use_cache else 0
        check_context_length(past + seq_len, self.pos_emb.num_embeddings)  # before any layer changes its cache
        pos_embeds = self.pos_emb(torch.arange(past, past + seq_len, device=in_idx.device))  # (seq_len, emb_dim)
        x = self.tok_emb(in_idx) + pos_embeds
        x = self.drop_emb(x)

        for i, block in enumerate(self.trf_blocks):
            x = block(x, use_cache=use_cache)
            if cache is not None:
                cache.update(i, (block.att.cache_k, block.att.cache_v))
        if use_cache:
            self.current_pos = past + seq_len

        x = self.final_norm(x)
        return self.out_head(x)

    def reset_kv_cache(self) -> None:
        for block in self.trf_blocks:
            block.att.reset_cache()
        self.current_pos = 0


def generate_text_simple_cached(model: GPTModel, idx: torch.Tensor, max_new_tokens: int,
                                context_size: int | None = None, use_cache: bool = True) -> torch.Tensor:
    """Greedy generation like ``ch04.generate_text_simple``, with the same tokens, computing each key once.

    ``idx`` is (batch, num_tokens); the result has ``max_new_tokens`` more columns. The prompt's last
    ``context_size`` tokens (default: the model's context length) fill the cache in one pass, then each step
    feeds only the newest token. ``use_cache=False`` runs the chapter's loop instead, for comparison.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    model.eval()
    ctx_len = context_size or model.pos_emb.num_embeddings
    with torch.no_grad():
        if not use_cache:
            for _ in range(max_new_tokens):
                logits = model(idx[:, -ctx_len:])
                next_idx = logits[:, -1].argmax(dim=-1, keepdim=True)  # (batch, 1)
                idx = torch.cat([idx, next_idx], dim=1)
            return idx

        model.reset_kv_cache()
        logits = model(idx[:, -ctx_len:], use_cache=True)  # prefill: the whole prompt in one pass
        for step in range(max_new_tokens):
            next_idx = logits[:, -1].argmax(dim=-1, keepdim=True)  # (batch, 1)
            idx = torch.cat([idx, next_idx], dim=1)
            if step == max_new_tokens - 1:
                break  # the last token needs no forward pass of its own
            if model.current_pos < ctx_len:
                logits = model(next_idx, use_cache=True)  # decode: one new token
            else:
                # the window is full and slides by one: every cached key would now sit one position earlier,
                # and with learned absolute positions that means recomputing them all from the last ctx_len tokens
                model.reset_kv_cache()
                logits = model(idx[:, -ctx_len:], use_cache=True)
    return idx
