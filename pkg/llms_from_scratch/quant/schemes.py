"""The quantization schemes by name: ``"int8"``, ``"int4"`` (this package's grids) and GGUF's ``"q8_0"``,
``"q4_0"``, ``"q4_1"`` blocks, all producing a :class:`~.weight.QuantizedWeight`."""

from __future__ import annotations

import torch

from .blocks import BLOCK_SIZE, FORMATS, quantize_block_format
from .grid import Grid
from .int4 import DEFAULT_GROUP_SIZE, quantize_int4
from .int8 import quantize_int8
from .weight import QuantizedWeight

SCHEMES = ("int8", "int4", *FORMATS)


def check_scheme(scheme: str, group_size: int | None) -> None:
    """Raise a one-line error for an unknown scheme or a group size the scheme cannot have."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if scheme in FORMATS and group_size not in (None, BLOCK_SIZE):
        raise ValueError(f"{scheme} has a fixed block of {BLOCK_SIZE} weights; leave group_size unset")


def scheme_grid(scheme: str, symmetric: bool | None = None) -> Grid:
    """The grid of ``"int8"`` (symmetric unless told) or ``"int4"`` (asymmetric unless told)."""
    if scheme == "int8":
        return Grid(8, True if symmetric is None else symmetric)
    if scheme == "int4":
        return Grid(4, False if symmetric is None else symmetric)
    raise ValueError(f"scheme {scheme!r} has no adjustable grid; use 'int8' or 'int4'")


def default_group_size(scheme: str, group_size: int | None) -> int | None:
    """``group_size`` or the scheme's default: per-channel for int8, 32 for int4 and the GGUF blocks."""
    if group_size is not None:
        return group_size
    return DEFAULT_GROUP_SIZE if scheme == "int4" else (BLOCK_SIZE if scheme in FORMATS else None)


def quantize_weight(weight: torch.Tensor, scheme: str, group_size: int | None = None,
                    symmetric: bool | None = None) -> QuantizedWeight:
    """Round-to-nearest quantization of ``weight`` (rows, cols) with the named scheme.

    ``group_size=None`` takes the scheme's default (per output channel for int8, 32 for int4), ``-1`` asks for
    one group per output channel; ``symmetric``
    applies to int8 (default True, absmax) and int4 (default False, zero point).
    """
    check_scheme(scheme, group_size)
    if scheme in FORMATS:
        if symmetric is not None:
            raise ValueError(f"{scheme} fixes its own grid; leave symmetric unset")
        return quantize_block_format(weight, scheme)
    if scheme == "int8":
        return quantize_int8(weight, group_size, True if symmetric is None else symmetric)
    return quantize_int4(weight, default_group_size(scheme, group_size), False if symmetric is None else symmetric)
