"""Greedy generation for a batch of left-padded prompts with the batched Qwen3 model."""

from __future__ import annotations

import torch

from ..generate import trim_input_tensor  # noqa: F401  (re-exported: the book imports it from here too)
from .utils import KVCache


def generate_text_simple(model, idx: torch.Tensor, max_new_tokens: int, context_size: int | None = None,
                         use_cache: bool = True, *, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Append ``max_new_tokens`` greedy tokens to every row of ``idx`` (batch, num_tokens).

    Prompts of different lengths are padded on the left; ``attention_mask`` (same shape as ``idx``) is 1 for
    prompt tokens and 0 for padding. Each row then gets the tokens it would get if generated alone. Without
    ``attention_mask``, every token counts as part of the prompt.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(idx)
    if attention_mask.shape != idx.shape:
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, idx has {tuple(idx.shape)}; "
                         "they must match")
    if (attention_mask[:, 1:] < attention_mask[:, :-1]).any():
        raise ValueError("attention_mask has padding after a prompt token; pad prompts on the left "
                         "(zeros first, then ones)")
    model.eval()
    ctx_len = context_size or model.cfg["context_length"]
    batch_size = idx.shape[0]

    with torch.no_grad():
        if use_cache:
            cache = KVCache(n_layers=model.cfg["n_layers"], batch_size=batch_size)
            model.reset_kv_cache(batch_size=batch_size, device=idx.device)
            input_ids, window = idx[:, -ctx_len:], attention_mask[:, -ctx_len:]
            # a row with p padding tokens starts at position -p: its first prompt token lands at position 0
            model.current_pos -= (window == 0).sum(dim=1)
            logits = model(input_ids, cache=cache, start_pos=model.current_pos.clone())
            model.current_pos += input_ids.shape[1]
            for step in range(max_new_tokens):
                next_token = logits[:, -1].argmax(dim=-1, keepdim=True)  # (batch, 1)
                idx = torch.cat([idx, next_token], dim=1)
                if step + 1 < max_new_tokens:  # the last token needs no forward pass of its own
                    logits = model(next_token, cache=cache, start_pos=model.current_pos.clone())
                    model.current_pos += 1
        else:
            for _ in range(max_new_tokens):
                window = attention_mask[:, -ctx_len:]
                logits = model(idx[:, -ctx_len:], cache=None, start_pos=-(window == 0).sum(dim=1))
                next_token = logits[:, -1].argmax(dim=-1, keepdim=True)
                idx = torch.cat([idx, next_token], dim=1)
                attention_mask = torch.cat([attention_mask, torch.ones_like(next_token)], dim=1)
    return idx
