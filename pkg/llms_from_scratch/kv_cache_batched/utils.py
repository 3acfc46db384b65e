"""A KV cache with one slot per layer and per batch row, for the batched Qwen3 model."""

from __future__ import annotations

from typing import Any


class KVCache:
    """``cache[layer_idx][batch_idx]`` holds that row's ``(keys, values)`` in that layer, or ``None``.

    Keeping rows apart lets a reader inspect or drop one sequence; the model joins the rows of a layer into one
    batch for each forward pass and splits the longer tensors back into rows afterwards.
    """

    def __init__(self, n_layers: int, batch_size: int):
        self.cache: list[list[Any]] = [[None] * batch_size for _ in range(n_layers)]

    def get(self, layer_idx: int, batch_idx: int) -> Any:
        return self.cache[layer_idx][batch_idx]

    def update(self, layer_idx: int, batch_idx: int, value: Any) -> None:
        self.cache[layer_idx][batch_idx] = value

    def get_layer(self, layer_idx: int) -> list[Any]:
        return self.cache[layer_idx]

    def reset(self) -> None:
        for layer in self.cache:
            for i in range(len(layer)):
                layer[i] = None
