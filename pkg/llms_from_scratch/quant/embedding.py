"""A token embedding whose table stays quantized: a lookup dequantizes only the rows it returns.

An embedding step reads one row per token, so a quantized table costs no speed, and the whole table (SmolLM2's
is 49,152 x 576) stays at its stored size: 8.5 bits per weight in GGUF's Q8_0 instead of 32.

``weight`` is an empty tensor that stands in for ``nn.Embedding.weight``: code that asks the embedding for the
dtype and device the model computes in (a model's ``new_cache``) reads them from it, and ``model.to(dtype)``
casts it like any floating buffer, which sets the dtype of the rows a lookup returns.
"""

from __future__ import annotations

import torch
from torch import nn

from .weight import QuantizedWeight, dequantize


class QuantizedEmbedding(nn.Module):
    """``nn.Embedding``'s lookup over a :class:`~.weight.QuantizedWeight` table (rows = token ids)."""

    def __init__(self, table: QuantizedWeight, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = table.shape
        self.bits, self.group_size, self.scheme = table.bits, table.group_size, table.scheme
        self.register_buffer("codes", table.codes)
        self.register_buffer("scales", table.scales)
        zeros_tensor = isinstance(table.zeros, torch.Tensor)
        self.register_buffer("zeros", table.zeros if zeros_tensor else None)
        self.zero_point = None if zeros_tensor else int(table.zeros)
        self.register_buffer("minimums", table.minimums)
        self.register_buffer("weight", torch.empty(0, dtype=dtype, device=table.codes.device), persistent=False)

    def quantized_weight(self) -> QuantizedWeight:
        zeros = self.zeros if self.zeros is not None else self.zero_point
        return QuantizedWeight(self.codes, self.scales, self.bits, self.group_size, zeros, self.minimums, self.scheme)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = self.quantized_weight().select_rows(input_ids.reshape(-1))  # (tokens, embedding_dim), quantized
        return dequantize(rows, self.weight.dtype).view(*input_ids.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}, {self.embedding_dim}, scheme={self.scheme}, bits={self.bits}, "
                f"group_size={self.group_size}")
