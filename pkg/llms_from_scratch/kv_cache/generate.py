"""Greedy generation with the KV cache, for the cached models of ``kv_cache`` (GPT-2, Llama 3, Qwen3).

The models take ``cache=`` (a :class:`KVCache`, or ``None`` for the plain forward pass) and have a
``reset_kv_cache()`` that sets their position back to zero; both are reset before a new prompt.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch

from ..generate import trim_input_tensor  # noqa: F401  (re-exported: the book imports it from here too)
from .utils import KVCache


def generate_text_simple(model, idx: torch.Tensor, max_new_tokens: int, context_size: int | None = None,
                         use_cache: bool = True) -> torch.Tensor:
    """Append ``max_new_tokens`` greedy tokens to ``idx`` (batch, num_tokens) and return the longer tensor."""
    model.eval()
    ctx_len = context_size or model.cfg["context_length"]
    with torch.no_grad():
        if use_cache:
            cache = KVCache(n_layers=model.cfg["n_layers"])
            model.reset_kv_cache()
            # the prompt fills the cache in one pass; after that, each step feeds only the newest token
            logits = model(idx[:, -ctx_len:], cache=cache)
            for step in range(max_new_tokens):
                next_idx = logits[:, -1].argmax(dim=-1, keepdim=True)  # (batch, 1)
                idx = torch.cat([idx, next_idx], dim=1)
                if step + 1 < max_new_tokens:  # the last token needs no forward pass of its own
                    logits = model(next_idx, cache=cache)
        else:
            for _ in range(max_new_tokens):
                logits = model(idx[:, -ctx_len:], cache=None)
                next_idx = logits[:, -1].argmax(dim=-1, keepdim=True)
                idx = torch.cat([idx, next_idx], dim=1)
    return idx


def generate_text_simple_stream(model, token_ids: torch.Tensor, max_new_tokens: int, eos_token_id: int | None = None,
                                context_size: int | None = None) -> Iterator[torch.Tensor]:
    """Yield greedy tokens one at a time, each of shape (batch, 1), stopping early when every row says EOS.

    ``context_size`` is accepted for compatibility and ignored: the prompt is not truncated, so a prompt plus
    new tokens longer than the model's context fails in the model rather than being cut silently.
    """
    if context_size is not None:
        warnings.warn("generate_text_simple_stream ignores context_size: the prompt is not truncated",
                      stacklevel=2)
    model.eval()
    with torch.no_grad():
        cache = KVCache(n_layers=model.cfg["n_layers"])
        model.reset_kv_cache()
        logits = model(token_ids, cache=cache)
        for step in range(max_new_tokens):
            next_token = logits[:, -1].argmax(dim=-1, keepdim=True)  # (batch, 1)
            if eos_token_id is not None and torch.all(next_token == eos_token_id):
                break
            yield next_token
            if step + 1 < max_new_tokens:
                logits = model(next_token, cache=cache)
