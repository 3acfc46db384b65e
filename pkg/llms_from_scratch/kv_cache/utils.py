"""A per-layer store of cached keys and values, handed to the model on every forward pass."""

from __future__ import annotations

from typing import Any


class KVCache:
    """One slot per transformer layer; each slot holds that layer's ``(keys, values)`` or ``None``.

    The attention layer reads its slot with :meth:`get`, appends the new positions' keys and values, and writes
    the longer tensors back with :meth:`update`. The cache knows nothing about shapes, so one class serves every
    model in ``kv_cache``.
    """

    def __init__(self, n_layers: int):
        self.cache: list[Any] = [None] * n_layers

    def get(self, layer_idx: int) -> Any:
        return self.cache[layer_idx]

    def update(self, layer_idx: int, value: Any) -> None:
        self.cache[layer_idx] = value

    def get_all(self) -> list[Any]:
        return self.cache

    def reset(self) -> None:
        for i in range(len(self.cache)):
            self.cache[i] = None
