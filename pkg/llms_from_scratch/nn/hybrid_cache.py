"""The decoding state of a hybrid model: softmax-attention layers and linear-attention layers side by side.

Qwen3-Next interleaves three gated DeltaNet layers with one full-attention layer. The full layers need every
past key and value; the linear layers only their fixed-size conv inputs and recurrent state. A
:class:`HybridCache` is one object holding both: a :class:`~.kv_cache.KVCache` sized for the full layers only
(their layer indices map onto its buffers) and a :class:`~.linear_state_cache.LinearAttentionCache`, whose
``conv_states`` and ``recurrent_states`` it exposes under the same names, so both kinds of layer read it as
their own cache. The slot bookkeeping (``append_tokens``, ``key_valid``, positions) is the KV cache's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .kv_cache import KVCache
from .linear_state_cache import LinearAttentionCache


class HybridCache(KVCache):
    """Keys and values of the ``full_layers``; conv and recurrent states of the layers in ``linear``."""

    def __init__(
        self,
        full_layers: Sequence[int],
        linear: LinearAttentionCache,
        batch_size: int,
        n_kv_groups: int,
        head_dim: int,
        max_length: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(len(full_layers), batch_size, n_kv_groups, head_dim, max_length, dtype=dtype, device=device)
        self.buffer_of = {layer: i for i, layer in enumerate(full_layers)}  # model layer -> KV buffer index
        self.linear = linear
        # the very dicts the linear cache updates (its reset replaces entries, never the dicts)
        self.conv_states = linear.conv_states
        self.recurrent_states = linear.recurrent_states

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return super().write(self.buffer_of[layer], keys, values)

    def nbytes(self) -> int:
        return super().nbytes() + self.linear.nbytes()

    def reset(self) -> None:
        super().reset()
        self.linear.reset()

    def rollback(self, n_tokens: int) -> None:
        raise ValueError("a hybrid cache cannot roll back: the linear-attention layers keep only their latest "
                         "state; re-run the prompt from a fresh cache instead")
