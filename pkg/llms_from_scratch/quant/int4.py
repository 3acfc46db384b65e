"""4-bit integer weights in groups: 16 levels per group of ``group_size`` consecutive input columns.

Sixteen levels are too few for a whole row: one large weight would stretch the step for every other weight of
its row. Groups of 32 to 128 columns keep the step local; each group costs one scale (and, asymmetric, one zero
point) on top of its 4-bit codes. Codes are unsigned (0..15) and packed two per byte; the symmetric grid keeps
zero at 8 and uses codes 1..15.
"""

from __future__ import annotations

import torch

from .grid import Grid
from .rtn import quantize_rtn
from .weight import QuantizedWeight

DEFAULT_GROUP_SIZE = 32


def quantize_int4(weight: torch.Tensor, group_size: int = DEFAULT_GROUP_SIZE, symmetric: bool = False
                  ) -> QuantizedWeight:
    """``weight`` (rows, cols) as packed 4-bit codes with a scale (and zero point) per group of ``group_size``
    columns; ``group_size=-1``: one group per output channel."""
    return quantize_rtn(weight, Grid(4, symmetric), group_size, scheme="int4")
