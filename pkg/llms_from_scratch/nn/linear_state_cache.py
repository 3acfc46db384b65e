"""The decoding state of linear-attention layers: a fixed size, however long the context grows.

A softmax-attention layer must keep every past key and value (see ``kv_cache.py``). A gated DeltaNet layer
(``deltanet.py``) needs only two things to continue a sequence:

* ``conv_states[layer]`` (batch, conv_dim, conv_kernel - 1): the last inputs of its causal convolution;
* ``recurrent_states[layer]`` (batch, n_heads, v_head_dim, qk_head_dim): the delta rule's memory matrix,
  kept in float32 because every future token is read from it.

Both start at zero, which is exactly the state before the first token (the convolution's left padding is
zeros, the memory is empty), so prefill and decode run the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class LinearAttentionCache:
    """Per linear-attention layer index: conv inputs and recurrent state, allocated once and overwritten."""

    def __init__(
        self,
        layers: Sequence[int],
        batch_size: int,
        conv_dim: int,
        conv_kernel: int,
        n_heads: int,
        qk_head_dim: int,
        v_head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.layers = tuple(layers)
        self.conv_states = {
            i: torch.zeros(batch_size, conv_dim, conv_kernel - 1, dtype=dtype, device=device) for i in self.layers
        }
        self.recurrent_states = {
            i: torch.zeros(batch_size, n_heads, v_head_dim, qk_head_dim, dtype=torch.float32, device=device)
            for i in self.layers
        }

    def nbytes(self) -> int:
        """Bytes held by all conv and recurrent states (independent of how many tokens were seen)."""
        tensors = list(self.conv_states.values()) + list(self.recurrent_states.values())
        return sum(t.numel() * t.element_size() for t in tensors)

    def reset(self) -> None:
        """Back to the empty state (layers replace their tensors, so zero new ones of the same shape)."""
        for states in (self.conv_states, self.recurrent_states):
            for i, t in states.items():
                states[i] = torch.zeros_like(t)
