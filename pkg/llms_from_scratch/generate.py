"""Small helpers for text generation that the book uses beyond the chapters' own `generate` functions."""

from __future__ import annotations

import torch


def trim_input_tensor(input_ids_tensor: torch.Tensor, context_len: int, max_new_tokens: int) -> torch.Tensor:
    """Cut a prompt from the left so that prompt + ``max_new_tokens`` fits into ``context_len`` positions.

    ``input_ids_tensor`` has shape (batch, num_tokens). The most recent tokens are kept, since they matter most
    for what comes next; at least one token always stays.
    """
    if max_new_tokens >= context_len:
        raise ValueError(
            f"max_new_tokens ({max_new_tokens}) must be smaller than the context length ({context_len}): "
            "ask for fewer new tokens"
        )
    keep = max(1, context_len - max_new_tokens)
    if input_ids_tensor.shape[1] > keep:
        input_ids_tensor = input_ids_tensor[:, -keep:]
    return input_ids_tensor
