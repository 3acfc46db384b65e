"""MXFP4, the 4-bit format of gpt-oss's expert weights, decoded to ordinary floats.

An MXFP4 tensor is cut into blocks of 32 consecutive values along its last axis. Each value is an FP4 (e2m1)
number: one sign bit, two exponent bits and one mantissa bit, so only the magnitudes 0, 0.5, 1, 1.5, 2, 3, 4
and 6 exist. Each block shares one e8m0 scale: an unsigned byte ``s`` meaning ``2 ** (s - 127)`` (an exponent
alone, no mantissa). The value is ``fp4 * 2 ** (s - 127)``.

The checkpoint stores a block's 32 codes in 16 bytes, two per byte with the *low* nibble first, as
``<name>_blocks`` of shape (..., rows, blocks per row, 16) and the scales as ``<name>_scales`` of shape
(..., rows, blocks per row). Every decoded value is a small integer times a power of two, so it is exact in
bfloat16 (and float32) unless the scale leaves that format's exponent range.
"""

from __future__ import annotations

import torch

# the e2m1 code -> value table: codes 0-7 are the non-negative values, 8-15 the same with the sign bit set
FP4_E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
E8M0_BIAS = 127
BLOCK_SIZE = 32  # values per shared scale


def dequantize_mxfp4(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """``blocks`` (..., rows, n_blocks, 16) uint8 and ``scales`` (..., rows, n_blocks) uint8 -> (..., rows,
    n_blocks * 32) in ``dtype``."""
    if blocks.dtype != torch.uint8 or scales.dtype != torch.uint8:
        raise ValueError(f"MXFP4 blocks and scales are uint8, got {blocks.dtype} and {scales.dtype}")
    if blocks.shape[-1] != BLOCK_SIZE // 2 or blocks.shape[:-1] != scales.shape:
        raise ValueError(f"MXFP4 blocks of shape {tuple(blocks.shape)} need scales of shape {tuple(blocks.shape[:-1])} "
                         f"and a last axis of {BLOCK_SIZE // 2} bytes; got scales {tuple(scales.shape)}")
    # both values of every possible byte, low nibble first: (256, 2), looked up once per byte
    table = torch.tensor(FP4_E2M1_VALUES, device=blocks.device)
    pairs = torch.stack((table.repeat(16), table.repeat_interleave(16)), dim=-1)
    # bfloat16 and float32 hold every fp4 value times every power of two (e8m0 255, NaN, aside), so the products
    # are exact in them; other dtypes get float32's exact values rounded once
    work = dtype if dtype in (torch.bfloat16, torch.float32) else torch.float32
    values = pairs.to(work)[blocks.int()]  # (..., rows, n_blocks, 16, 2)
    powers = torch.ldexp(torch.ones(scales.shape, dtype=work, device=blocks.device), scales.to(torch.int32) - E8M0_BIAS)
    values = values.flatten(-2) * powers[..., None]  # (..., rows, n_blocks, 32)
    return values.flatten(-2).to(dtype)  # (..., rows, n_blocks * 32)
