"""Converting a quantized matrix to another scheme a slice of rows at a time, so that the float matrix between
the two formats never exists whole (a 49,152-row embedding would take 113 MB as float32 for a moment)."""

from __future__ import annotations

import torch

from .schemes import quantize_weight
from .weight import QuantizedWeight, dequantize, stack_rows

CHUNK_ROWS = 4096


def requantize(weight: QuantizedWeight, scheme: str, group_size: int | None = None,
               chunk_rows: int = CHUNK_ROWS) -> QuantizedWeight:
    """``weight`` dequantized and quantized again with ``scheme`` (see ``quantize_weight``), ``chunk_rows`` rows
    at a time. Rows are quantized independently, so the result equals quantizing the whole float matrix."""
    rows, _ = weight.shape
    parts = []
    for start in range(0, rows, chunk_rows):
        index = torch.arange(start, min(start + chunk_rows, rows), device=weight.codes.device)
        parts.append(quantize_weight(dequantize(weight.select_rows(index)), scheme, group_size))
    return stack_rows(parts)
