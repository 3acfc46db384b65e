"""Faster matrix products for :class:`~.linear.QuantizedLinear` from PyTorch itself, chosen by measuring.

Candidates (:data:`KERNELS`), each offered only where this PyTorch has the op and the layer has its layout:

* ``"plain"``: dequantize the weight, then ``F.linear``; always available, the reference for the others;
* ``"int8pack"``: ``torch.ops.aten._weight_int8pack_mm``, for signed 8-bit codes with one scale per output
  channel (``int8`` per-channel); it reads the codes as they are stored;
* ``"int4pack"``: ``torch.ops.aten._weight_int4pack_mm_for_cpu``, for 4-bit codes in groups of 32, 64, 128 or
  256 (``int4``, ``q4_0``, ``q4_1``). It wants the codes in its own tiled layout
  (``_convert_weight_to_int4pack_for_cpu``) and each group as ``(q - 8) * scale + offset``, so the layer keeps
  that second copy of its codes (half a byte per weight) while the kernel is in use.

:func:`~.tuning.choose_kernels` tries the candidates on a model's layers, grouped by kind (shape and format): a
candidate must first reproduce the plain path's output on random inputs within :data:`TOLERANCE` (relative to the
output's largest value), then race the plain path over the real weights in alternating rounds; the fastest wins,
and the plain path stays unless another beats it by more than :data:`MARGIN`. A race keeps the quickest round of
each candidate, the one least disturbed by other work on the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

PLAIN = "plain"
MARGIN = 0.03  # a kernel must be this much faster than the plain path to replace it: smaller gaps are noise
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 2e-2}
BUDGET_S = 0.2  # time spent racing the candidates of one kind of layer
MIN_ROUNDS = 5  # a race of fewer rounds is easily decided by another process taking the CPU once
RACE_WEIGHTS = 16 * 2**20  # weights multiplied per round of a race (64 MB in float32)
INT4_GROUP_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class Kernel:
    """A way to compute ``rows @ W^T`` (without bias) for a quantized layer."""

    name: str
    applies: Callable[[nn.Module], bool]  # does the layer's format suit the kernel?
    prepare: Callable[[nn.Module], tuple[torch.Tensor | None, torch.Tensor | None]]  # (kernel_weight, kernel_scales)
    # (layer, rows (M, in), kernel_weight, kernel_scales) -> (M, out)
    run: Callable[[nn.Module, torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor]


def _has_op(name: str) -> bool:
    return hasattr(torch.ops.aten, name)


def _plain_run(layer: nn.Module, rows: torch.Tensor, weight: None = None, scales: None = None) -> torch.Tensor:
    return torch.nn.functional.linear(rows, layer.dequantize(rows.dtype))


def _int8_applies(layer: nn.Module) -> bool:
    return (_has_op("_weight_int8pack_mm") and layer.bits == 8 and layer.codes.dtype == torch.int8
            and layer.zero_point == 0 and layer.minimums is None and layer.group_size == layer.in_features)


def _int8_prepare(layer: nn.Module) -> tuple[None, torch.Tensor]:
    return None, layer.scales[:, 0].float().contiguous()  # (out,): one scale per output channel


def _int8_run(layer: nn.Module, rows: torch.Tensor, weight: None, scales: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten._weight_int8pack_mm(rows, layer.codes, scales)


def _int4_applies(layer: nn.Module) -> bool:
    return (_has_op("_weight_int4pack_mm_for_cpu") and _has_op("_convert_weight_to_int4pack_for_cpu")
            and layer.bits == 4 and layer.group_size in INT4_GROUP_SIZES and layer.out_features % 16 == 0)


def _int4_prepare(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    qw = layer.quantized_weight()
    codes = qw.int_codes().to(torch.int32)  # (out, in), values 0..15
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 2)
    scale = qw.scales.float()  # (out, groups)
    zero = qw.zeros.float() if isinstance(qw.zeros, torch.Tensor) else float(qw.zeros)
    # (q - zero) * scale + minimum  ==  (q - 8) * scale + offset   with   offset = (8 - zero) * scale + minimum
    offset = (8 - zero) * scale
    if qw.minimums is not None:
        offset = offset + qw.minimums.float()
    scale_offset = torch.stack([scale, offset], dim=-1).transpose(0, 1).contiguous()  # (groups, out, 2)
    return packed, scale_offset


def _int4_run(layer: nn.Module, rows: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten._weight_int4pack_mm_for_cpu(rows, weight, layer.group_size, scales)


KERNELS = {
    PLAIN: Kernel(PLAIN, lambda layer: True, lambda layer: (None, None), _plain_run),
    "int8pack": Kernel("int8pack", _int8_applies, _int8_prepare, _int8_run),
    "int4pack": Kernel("int4pack", _int4_applies, _int4_prepare, _int4_run),
}


def kernel_candidates(layer: nn.Module) -> list[str]:
    """Names of the kernels whose op exists here and whose layout suits ``layer``; the plain path first."""
    return [name for name, k in KERNELS.items() if k.applies(layer)]


def set_kernel(layer: nn.Module, name: str, rows: int = 1, dtype: torch.dtype = torch.float32) -> None:
    """Make ``layer`` use kernel ``name`` for inputs of ``rows`` rows in ``dtype`` (the plain path otherwise).

    Builds the kernel's own layout of the weight where it needs one, and frees the previous kernel's.
    """
    kernel = KERNELS.get(name)
    if kernel is None or not kernel.applies(layer):
        raise ValueError(f"kernel {name!r} does not apply to {layer!r}; candidates: {kernel_candidates(layer)}")
    weight, scales = kernel.prepare(layer)
    if scales is not None:
        scales = scales.to(dtype)
    layer.kernel_weight, layer.kernel_scales = weight, scales
    layer.kernel, layer.kernel_rows, layer.kernel_dtype, layer.kernel_error = name, rows, dtype, 0.0


def kernel_error(layer: nn.Module, name: str, rows: int, dtype: torch.dtype, seed: int = 0,
                 reference_dtype: torch.dtype | None = None) -> float:
    """Largest difference between kernel ``name`` on inputs in ``dtype`` and the plain path on the same random
    inputs in ``reference_dtype`` (default: ``dtype``), relative to the largest output of the plain path."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, layer.in_features, generator=g).to(device=layer.codes.device)
    with torch.no_grad():
        ref = _plain_run(layer, x.to(reference_dtype or dtype)).float()
        out = KERNELS[name].run(layer, x.to(dtype), layer.kernel_weight, layer.kernel_scales).float()
    return float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
