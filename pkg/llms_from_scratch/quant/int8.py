"""8-bit integer weights: absmax (symmetric, signed codes -127..127) or zero point (asymmetric, codes 0..255).

With ``group_size=None`` each output channel (row of the weight) gets its own scale, which is what PyTorch's
int8 weight-only kernel expects; a smaller group size follows the weights more closely at the cost of one more
scale per group.
"""

from __future__ import annotations

import torch

from .grid import Grid
from .rtn import quantize_rtn
from .weight import QuantizedWeight


def quantize_int8(weight: torch.Tensor, group_size: int | None = None, symmetric: bool = True) -> QuantizedWeight:
    """``weight`` (rows, cols) as 8-bit codes; per-channel scales unless ``group_size`` is given."""
    return quantize_rtn(weight, Grid(8, symmetric), group_size, scheme="int8")
