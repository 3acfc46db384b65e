"""A KV cache whose sliding-window layers keep only the last ``W`` tokens (a ring buffer).

With a sliding window of ``W`` keys (Mistral 7B v0.1: 4096), a query never looks further back than ``W - 1``
tokens, so storing more is wasted memory. Each sliding layer here owns a buffer of ``W`` slots; token
number ``s`` (counting every cache slot, padding included) lives in ring slot ``s % W`` and overwrites the
token ``W`` places before it. Full-attention layers of the same model (``layer_types`` may mix both) keep a
buffer of ``max_length`` slots as in :class:`~llms_from_scratch.nn.kv_cache.KVCache`; the slot bookkeeping
is :class:`~llms_from_scratch.nn.kv_cache.KVCacheBase`'s.

A forward pass over ``t`` new tokens attends to ``[ring contents | t new tokens]``: the ring is read *before*
the new tokens are written, so a prompt longer than the window still sees, for each query, exactly its last
``W`` keys. :meth:`visible_keys` tells the mask builder which absolute slot each of those keys holds.
Memory per sliding layer is ``W`` tokens whatever the generated length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .kv_cache import KVCacheBase


class RingKVCache(KVCacheBase):
    def __init__(
        self,
        windows: Sequence[int | None],
        batch_size: int,
        n_kv_groups: int,
        head_dim: int,
        max_length: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        # slot bookkeeping (one bool and one position per token and row) stays max_length long
        super().__init__(batch_size, max_length, device=device)
        self.windows = [None if w is None else min(w, max_length) for w in windows]
        self.keys_per_layer, self.values_per_layer = [], []
        for w in self.windows:
            shape = (batch_size, n_kv_groups, max_length if w is None else w, head_dim)
            self.keys_per_layer.append(torch.zeros(shape, dtype=dtype, device=device))
            self.values_per_layer.append(torch.zeros(shape, dtype=dtype, device=device))

    def nbytes(self) -> int:
        """Bytes held by the key/value buffers (what the window bounds)."""
        return sum(t.numel() * t.element_size() for t in self.keys_per_layer + self.values_per_layer)

    def _ring_slots(self, window: int, end: int) -> torch.Tensor:
        """Absolute slot held by each ring position after ``end`` tokens were written (-1: still empty)."""
        p = torch.arange(window, device=self.key_valid.device)
        slots = end - 1 - (end - 1 - p) % window  # the newest slot s < end with s % window == p
        return torch.where(slots >= 0, slots, torch.full_like(slots, -1))

    def visible_keys(self, window: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if window is None:
            return super().visible_keys(None)
        ring = min(window, self.max_length)
        new = torch.arange(self._start, self.length, device=self.key_valid.device)
        slots = torch.cat([self._ring_slots(ring, self._start), new])  # (ring + new tokens,)
        valid = self.key_valid[:, slots.clamp(min=0)] & (slots >= 0)  # (batch, ring + new tokens)
        return valid, slots

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        window = self.windows[layer]
        k_buf, v_buf = self.keys_per_layer[layer], self.values_per_layer[layer]
        t = keys.shape[2]
        if window is None:
            end = self._start + t
            k_buf[:, :, self._start : end] = keys
            v_buf[:, :, self._start : end] = values
            return k_buf[:, :, :end], v_buf[:, :, :end]
        # read the ring before overwriting it: the new queries may still need the keys about to be replaced
        k_all, v_all = torch.cat([k_buf, keys], dim=2), torch.cat([v_buf, values], dim=2)
        keep = min(t, window)  # of a long chunk only the last `window` tokens stay
        positions = torch.arange(self._start + t - keep, self._start + t, device=keys.device) % window
        k_buf[:, :, positions] = keys[:, :, t - keep :]
        v_buf[:, :, positions] = values[:, :, t - keep :]
        return k_all, v_all

    def rollback(self, n_tokens: int) -> None:
        raise ValueError("a ring-buffer cache cannot roll back: the dropped tokens overwrote older ones")
