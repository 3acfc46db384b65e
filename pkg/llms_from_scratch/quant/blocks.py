"""GGUF's (llama.cpp's) block formats Q8_0, Q4_0 and Q4_1, computed exactly as ggml computes them.

Each row is cut into blocks of 32 weights; a block stores one or two float16 numbers and 32 codes:

========  ===========================================  ==============================  =================
format    block bytes                                  a weight is                     bits per weight
========  ===========================================  ==============================  =================
Q8_0      d (f16), 32 x int8                            ``q * d``, q in -127..127       (2 + 32) * 8 / 32 = 8.5
Q4_0      d (f16), 16 bytes of 4-bit codes             ``(q - 8) * d``, q in 0..15     (2 + 16) * 8 / 32 = 4.5
Q4_1      d (f16), m (f16), 16 bytes of 4-bit codes    ``q * d + m``, q in 0..15       (4 + 16) * 8 / 32 = 5.0
========  ===========================================  ==============================  =================

Bit for bit agreement with ggml (and with the ``gguf`` package, which reproduces it) needs its exact steps:

* the codes are computed with ``1 / d`` in float32, *before* ``d`` is rounded to float16 for storage;
* Q8_0 rounds with C's ``roundf``, which rounds halves away from zero (``torch.round`` rounds them to even);
* Q4_0 takes ``d = w_max / -8`` from the weight of largest magnitude *with its sign* (the first one on a tie), so
  that weight lands exactly on code 0, and rounds by ``trunc(w / d + 8.5)``; Q4_1 by ``trunc((w - min) / d + 0.5)``.

In a 4-bit block, byte ``j`` holds the code of weight ``j`` in its low nibble and of weight ``j + 16`` in its
high nibble (:func:`to_gguf_bytes`); :class:`~.weight.QuantizedWeight` packs neighbours instead, so the
conversion reorders nibbles.
"""

from __future__ import annotations

import numpy as np
import torch

from .weight import QuantizedWeight, pack_int4, unpack_int4

BLOCK_SIZE = 32
FORMATS = ("q8_0", "q4_0", "q4_1")
BITS_PER_WEIGHT = {"q8_0": 8.5, "q4_0": 4.5, "q4_1": 5.0}
_BLOCK_BYTES = {"q8_0": 34, "q4_0": 18, "q4_1": 20}


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's ``roundf``: to the nearest integer, halves away from zero (2.5 -> 3, -2.5 -> -3)."""
    a = x.abs()
    whole = torch.floor(a)
    # a - floor(a) is exact in floating point, so the comparison sees the true fraction
    return torch.sign(x) * (whole + (a - whole >= 0.5).to(x.dtype))


def _reciprocal(d: torch.Tensor) -> torch.Tensor:
    """``1 / d``, with 0 where ``d`` is 0 (an all-zero block: every code becomes the zero code)."""
    return torch.where(d == 0, torch.zeros_like(d), 1.0 / torch.where(d == 0, torch.ones_like(d), d))


def _blocks(weight: torch.Tensor) -> torch.Tensor:
    rows, cols = weight.shape
    if cols % BLOCK_SIZE:
        raise ValueError(f"GGUF block formats need the column count to be a multiple of {BLOCK_SIZE}, got {cols}")
    return weight.detach().to(torch.float32).reshape(rows, cols // BLOCK_SIZE, BLOCK_SIZE)  # (rows, blocks, 32)


def quantize_q8_0(weight: torch.Tensor) -> QuantizedWeight:
    """Q8_0: 32 signed 8-bit codes and one float16 scale ``max|w| / 127`` per block."""
    b = _blocks(weight)
    d = b.abs().amax(dim=-1, keepdim=True) / 127
    q = round_half_away(b * _reciprocal(d)).to(torch.int8)
    return QuantizedWeight(q.reshape(weight.shape), d[..., 0].to(torch.float16), 8, BLOCK_SIZE, 0, None, "q8_0")


def quantize_q4_0(weight: torch.Tensor) -> QuantizedWeight:
    """Q4_0: 4-bit codes, zero point 8, one float16 scale per block (the signed largest weight maps to -8)."""
    b = _blocks(weight)
    first_largest = b.abs().argmax(dim=-1, keepdim=True)  # argmax returns the first index on a tie, as ggml
    d = torch.gather(b, -1, first_largest) / -8
    q = torch.trunc(b * _reciprocal(d) + 8.5).clamp(0, 15)
    packed = pack_int4(q.to(torch.uint8).reshape(weight.shape))
    return QuantizedWeight(packed, d[..., 0].to(torch.float16), 4, BLOCK_SIZE, 8, None, "q4_0")


def quantize_q4_1(weight: torch.Tensor) -> QuantizedWeight:
    """Q4_1: 4-bit codes, one float16 scale ``(max - min) / 15`` and one float16 minimum per block."""
    b = _blocks(weight)
    lo = b.amin(dim=-1, keepdim=True)
    d = (b.amax(dim=-1, keepdim=True) - lo) / 15
    q = torch.trunc((b - lo) * _reciprocal(d) + 0.5).clamp(0, 15)
    packed = pack_int4(q.to(torch.uint8).reshape(weight.shape))
    return QuantizedWeight(packed, d[..., 0].to(torch.float16), 4, BLOCK_SIZE, 0, lo[..., 0].to(torch.float16),
                           "q4_1")


QUANTIZERS = {"q8_0": quantize_q8_0, "q4_0": quantize_q4_0, "q4_1": quantize_q4_1}


def quantize_block_format(weight: torch.Tensor, fmt: str) -> QuantizedWeight:
    """``weight`` (rows, cols) in the GGUF block format ``fmt`` (``"q8_0"``, ``"q4_0"`` or ``"q4_1"``)."""
    if fmt not in QUANTIZERS:
        raise ValueError(f"unknown GGUF block format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return QUANTIZERS[fmt](weight)


def _f16_bytes(t: torch.Tensor) -> torch.Tensor:
    """float16 values (rows, blocks) as their two little-endian bytes (rows, blocks, 2)."""
    return t.to(torch.float16).contiguous().view(torch.uint8).view(*t.shape, 2)


def _ggml_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """Codes (rows, blocks, 32) in ggml's order: byte j = code j (low nibble) | code j + 16 (high nibble)."""
    return codes[..., :16] | (codes[..., 16:] << 4)


def to_gguf_bytes(weight: QuantizedWeight) -> np.ndarray:
    """The bytes a GGUF file stores for ``weight``: (rows, blocks * block_bytes) uint8, as ``gguf.quants.quantize``
    returns them."""
    fmt = weight.scheme
    if fmt not in FORMATS:
        raise ValueError(f"only GGUF block formats ({', '.join(FORMATS)}) have a GGUF byte layout, got {fmt!r}")
    rows, cols = weight.shape
    n_blocks = cols // BLOCK_SIZE
    parts = [_f16_bytes(weight.scales)]
    if fmt == "q4_1":
        parts.append(_f16_bytes(weight.minimums))
    if fmt == "q8_0":
        parts.append(weight.codes.view(torch.uint8).reshape(rows, n_blocks, BLOCK_SIZE))
    else:
        codes = unpack_int4(weight.codes).reshape(rows, n_blocks, BLOCK_SIZE)
        parts.append(_ggml_nibbles(codes))
    return torch.cat(parts, dim=-1).reshape(rows, n_blocks * _BLOCK_BYTES[fmt]).numpy()


def from_gguf_bytes(data: np.ndarray | torch.Tensor, fmt: str, shape: tuple[int, int]) -> QuantizedWeight:
    """Read a tensor stored in a GGUF block format (its raw bytes) into a :class:`~.weight.QuantizedWeight`,
    without dequantizing it. ``shape`` is the weight's (rows, cols)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown GGUF block format {fmt!r}; choose one of {', '.join(FORMATS)}")
    rows, cols = shape
    n_blocks = cols // BLOCK_SIZE
    array = np.asarray(data)
    if not array.flags.writeable:  # a view into a memory-mapped file: copy the bytes (they stay quantized)
        array = np.array(array)
    raw = torch.as_tensor(np.ascontiguousarray(array), dtype=torch.uint8)
    if raw.numel() != rows * n_blocks * _BLOCK_BYTES[fmt] or cols % BLOCK_SIZE:
        raise ValueError(f"{raw.numel()} bytes do not hold a {fmt} tensor of shape {shape}")
    blocks = raw.reshape(rows, n_blocks, _BLOCK_BYTES[fmt])

    def f16(start: int) -> torch.Tensor:
        return blocks[..., start:start + 2].contiguous().view(torch.float16)[..., 0]  # (rows, blocks)

    if fmt == "q8_0":
        codes = blocks[..., 2:].contiguous().view(torch.int8).reshape(rows, cols)
        return QuantizedWeight(codes, f16(0), 8, BLOCK_SIZE, 0, None, fmt)
    nibbles = blocks[..., -16:]
    codes = torch.cat([nibbles & 0x0F, nibbles >> 4], dim=-1).reshape(rows, cols)  # ggml order -> column order
    if fmt == "q4_0":
        return QuantizedWeight(pack_int4(codes), f16(0), 4, BLOCK_SIZE, 8, None, fmt)
    return QuantizedWeight(pack_int4(codes), f16(0), 4, BLOCK_SIZE, 0, f16(2), fmt)
