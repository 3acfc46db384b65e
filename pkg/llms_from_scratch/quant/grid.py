"""The integer grid of one group of weights: absmax (symmetric) or min-max with a zero point (asymmetric).

A grid maps the floats of a group onto ``2**bits`` evenly spaced levels ``(q - zero) * scale``:

* symmetric (absmax): ``scale = max|w| / (2**(bits-1) - 1)`` and zero is fixed, so the levels are symmetric
  around 0.0 and one level is wasted on each side when the weights are lopsided;
* asymmetric (zero point): ``scale = (max - min) / (2**bits - 1)`` with an integer ``zero`` chosen so that
  0.0 is exactly a level; all ``2**bits`` levels cover the group's actual range.

Either way an element inside the range is off by at most ``scale / 2``: rounding moves it by half a step at most.
Round-to-nearest (RTN) applies the grid to every group at once; GPTQ applies it one column at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Grid:
    """``bits``-bit levels, symmetric (constant zero) or asymmetric (a zero point per group)."""

    bits: int
    symmetric: bool

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 8:
            raise ValueError(f"a grid needs 2 to 8 bits, got {self.bits}")

    @property
    def qmin(self) -> int:
        """The smallest code used."""
        if self.symmetric:
            return self.zero_constant - (2 ** (self.bits - 1) - 1)
        return 0

    @property
    def qmax(self) -> int:
        """The largest code used."""
        if self.symmetric:
            return self.zero_constant + 2 ** (self.bits - 1) - 1
        return 2**self.bits - 1

    @property
    def zero_constant(self) -> int:
        """The zero point of a symmetric grid: 0 for signed 8-bit codes, the middle code (8 for 4 bits) for
        narrower grids, whose codes are unsigned."""
        return 0 if self.bits == 8 else 2 ** (self.bits - 1)

    def fit(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point for each group of ``w`` (..., group_size): two tensors of shape (...)."""
        w = w.float()
        if self.symmetric:
            scale = w.abs().amax(dim=-1) / (2 ** (self.bits - 1) - 1)
            zero = torch.full_like(scale, self.zero_constant)
        else:
            # the range always includes 0.0, so that 0.0 is a level and zero lies on the grid
            lo = w.amin(dim=-1).clamp(max=0.0)
            hi = w.amax(dim=-1).clamp(min=0.0)
            scale = (hi - lo) / (2**self.bits - 1)
            zero = torch.round(-lo / torch.where(scale == 0, 1.0, scale)).clamp(0, 2**self.bits - 1)
        # an all-zero group: any scale reproduces it; 1.0 keeps the division below finite
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        return scale, zero

    def quantize(self, w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        """Codes (as floats holding integers) of ``w`` on the grid; ``scale``/``zero`` broadcast against ``w``."""
        return torch.clamp(torch.round(w / scale) + zero, self.qmin, self.qmax)

    @staticmethod
    def dequantize(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
        return (q - zero) * scale
