"""Round-to-nearest (RTN) quantization of a whole weight matrix on a :class:`~.grid.Grid`, group by group."""

from __future__ import annotations

import torch

from .grid import Grid
from .weight import QuantizedWeight, pack_int4

PER_CHANNEL = -1  # as a group_size: one group per output channel (row), whatever the row's length


def group_count(cols: int, group_size: int | None) -> int:
    """Number of groups per row; ``group_size`` None or :data:`PER_CHANNEL` means one group per row."""
    size = cols if group_size in (None, PER_CHANNEL) else group_size
    if size < 1 or cols % size:
        raise ValueError(f"group_size {group_size} does not divide the {cols} input columns; pick a divisor "
                         f"of {cols} (or -1 for one scale per output channel)")
    return cols // size


def to_quantized_weight(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, grid: Grid,
                        scheme: str) -> QuantizedWeight:
    """Store float-held ``codes`` (rows, cols) with their group ``scale``/``zero`` (rows, groups) compactly.

    Grids of up to 4 bits are stored as packed 4-bit codes, wider ones as bytes (signed for symmetric 8-bit).
    """
    rows, cols = codes.shape
    group_size = cols // scale.shape[1]
    if grid.bits <= 4:
        stored, container = pack_int4(codes.to(torch.uint8)), 4
    else:
        signed = grid.symmetric and grid.bits == 8
        stored, container = codes.to(torch.int8 if signed else torch.uint8), 8
    zeros: torch.Tensor | int = grid.zero_constant if grid.symmetric else zero.to(torch.uint8)
    return QuantizedWeight(stored, scale.float().contiguous(), container, group_size, zeros, None, scheme)


def quantize_rtn(weight: torch.Tensor, grid: Grid, group_size: int | None, scheme: str = "") -> QuantizedWeight:
    """Round every weight of ``weight`` (rows, cols) to the nearest level of its group's grid."""
    rows, cols = weight.shape
    groups = group_count(cols, group_size)
    w = weight.detach().float().reshape(rows, groups, cols // groups)  # (rows, groups, group_size)
    scale, zero = grid.fit(w)  # (rows, groups) each
    codes = grid.quantize(w, scale[..., None], zero[..., None]).reshape(rows, cols)
    return to_quantized_weight(codes, scale, zero, grid, scheme)
