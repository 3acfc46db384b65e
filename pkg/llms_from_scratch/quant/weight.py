"""A quantized weight matrix: integer codes plus the few numbers per group that turn them back into floats.

Every scheme in this package stores a weight ``(rows, cols)`` the same way. Each row is cut into groups of
``group_size`` consecutive columns (one group per row = per-channel), and each group ``j`` of row ``r`` has a
``scale``, an integer ``zero`` point and, for GGUF's Q4_1 only, a ``minimum``::

    w[r, c] = (q[r, c] - zero[r, j]) * scale[r, j] + minimum[r, j]        with j = c // group_size

Symmetric schemes have a constant zero (0 for signed 8-bit codes, 8 for unsigned 4-bit codes). 4-bit codes are
packed two per byte: column ``2i`` in the low nibble of byte ``i``, column ``2i + 1`` in the high nibble.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """Pack codes 0..15 of shape (rows, cols) into bytes (rows, cols // 2): even column low, odd column high."""
    if codes.shape[-1] % 2:
        raise ValueError(f"packing two 4-bit codes per byte needs an even number of columns, got {codes.shape[-1]}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) > 15):
        raise ValueError("4-bit codes must lie in 0..15")
    c = codes.to(torch.uint8)
    return c[..., 0::2] | (c[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`pack_int4`: bytes (rows, cols // 2) -> codes (rows, cols) as uint8."""
    low, high = packed & 0x0F, packed >> 4
    return torch.stack([low, high], dim=-1).flatten(-2)  # (rows, cols // 2, 2) -> (rows, cols)


@dataclass
class QuantizedWeight:
    """A weight ``(rows, cols)`` kept as integer codes; :func:`dequantize` gives the float matrix back.

    ``codes``: int8 (rows, cols) for signed 8-bit codes, uint8 (rows, cols) for unsigned 8-bit codes, or uint8
    (rows, cols // 2) holding two 4-bit codes per byte. ``scales`` and, where present, ``zeros`` (integer
    valued) and ``minimums`` are (rows, cols // group_size). ``zeros`` may be a plain int shared by all groups.
    ``scheme`` names where the numbers came from (``"int8"``, ``"q4_1"``, ...).
    """

    codes: torch.Tensor
    scales: torch.Tensor
    bits: int
    group_size: int
    zeros: torch.Tensor | int = 0
    minimums: torch.Tensor | None = None
    scheme: str = ""

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, got {self.bits}")
        rows, cols = self.shape
        if self.group_size < 1 or cols % self.group_size:
            raise ValueError(f"group_size {self.group_size} must divide the {cols} columns")
        groups = (rows, cols // self.group_size)
        for name in ("scales", "zeros", "minimums"):
            value = getattr(self, name)
            if isinstance(value, torch.Tensor) and tuple(value.shape) != groups:
                raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {groups} (rows, groups)")

    @property
    def shape(self) -> tuple[int, int]:
        rows, stored = self.codes.shape
        return rows, stored * 2 if self.bits == 4 else stored

    @property
    def symmetric(self) -> bool:
        """True when every group's zero point is the same constant and there is no minimum."""
        return not isinstance(self.zeros, torch.Tensor) and self.minimums is None

    def int_codes(self) -> torch.Tensor:
        """The codes as int16, one per weight (rows, cols): unpacked, so arithmetic on them cannot overflow."""
        codes = unpack_int4(self.codes) if self.bits == 4 else self.codes
        return codes.to(torch.int16)

    def nbytes(self) -> int:
        """Bytes the codes, scales, zero points and minimums occupy."""
        tensors = [self.codes, self.scales, self.zeros, self.minimums]
        return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))

    def bits_per_weight(self) -> float:
        """Storage per weight, counting the per-group numbers: 8.5 for Q8_0, 4.5 for Q4_0, 5.0 for Q4_1."""
        rows, cols = self.shape
        return 8 * self.nbytes() / (rows * cols)

    def select_rows(self, index: torch.Tensor) -> QuantizedWeight:
        """The weight made of rows ``index`` (e.g. a permutation of the output channels), still quantized: rows
        are independent, so their codes and group numbers move with them."""
        def pick(t):
            return t[index] if isinstance(t, torch.Tensor) else t
        return QuantizedWeight(pick(self.codes), pick(self.scales), self.bits, self.group_size, pick(self.zeros),
                               pick(self.minimums), self.scheme)

    def to(self, device: torch.device | str) -> QuantizedWeight:
        """The same weight on another device."""
        def move(t):
            return t.to(device) if isinstance(t, torch.Tensor) else t
        return QuantizedWeight(move(self.codes), move(self.scales), self.bits, self.group_size, move(self.zeros),
                               move(self.minimums), self.scheme)


def dequantize(weight: QuantizedWeight, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The float matrix ``(rows, cols)`` that ``weight`` stands for: ``(q - zero) * scale (+ minimum)``.

    The arithmetic is float32 in this order, which is also the order of the ``gguf`` package's dequantizers, so
    GGUF blocks come back bit for bit as that package returns them; the result is then cast to ``dtype``.
    """
    rows, cols = weight.shape
    groups = cols // weight.group_size
    codes = unpack_int4(weight.codes) if weight.bits == 4 else weight.codes  # one code per weight (rows, cols)
    # integer codes and zero points are exact in float32, so subtracting them there equals subtracting them as
    # integers; working in place keeps one float matrix alive instead of one per step
    w = codes.view(rows, groups, weight.group_size).to(torch.float32)  # (rows, groups, group_size)
    zeros = weight.zeros
    if isinstance(zeros, torch.Tensor):
        w.sub_(zeros.to(torch.float32)[..., None])
    elif zeros:
        w.sub_(zeros)
    w.mul_(weight.scales.to(torch.float32)[..., None])
    if weight.minimums is not None:
        w.add_(weight.minimums.to(torch.float32)[..., None])
    return w.view(rows, cols).to(dtype)


def stack_rows(weights: list[QuantizedWeight]) -> QuantizedWeight:
    """One weight made of the rows of ``weights`` in order (e.g. the query, key and value projections as one
    matrix), still quantized: rows are independent, so their codes and group numbers are simply stacked. The
    weights must share their format (bits, group size, scheme, kind of zero point)."""
    first = weights[0]
    formats = {(w.bits, w.group_size, w.scheme, w.shape[1], w.scales.dtype, isinstance(w.zeros, torch.Tensor),
                None if isinstance(w.zeros, torch.Tensor) else w.zeros, w.minimums is None) for w in weights}
    if len(formats) != 1:
        raise ValueError("only weights of one format (bits, group size, scheme, columns, zero point) can be stacked")

    def joined(name: str):
        values = [getattr(w, name) for w in weights]
        return torch.cat(values) if isinstance(values[0], torch.Tensor) else values[0]

    return QuantizedWeight(joined("codes"), joined("scales"), first.bits, first.group_size, joined("zeros"),
                           joined("minimums"), first.scheme)

