"""Faster matrix products for :class:`~.linear.QuantizedLinear` from PyTorch itself, chosen by measuring.

Candidates (:data:`KERNELS`), each offered only where this PyTorch has the op and the layer has its layout:

* ``"plain"``: dequantize the weight, then ``F.linear``; always available, the reference for the others;
* ``"int8pack"``: ``torch.ops.aten._weight_int8pack_mm``, for signed 8-bit codes with one scale per output
  channel (``int8`` per-channel); it reads the codes as they are stored;
* ``"int4pack"``: ``torch.ops.aten._weight_int4pack_mm_for_cpu``, for 4-bit codes in groups of 32, 64, 128 or
  256 (``int4``, ``q4_0``, ``q4_1``). It wants the codes in its own tiled layout
  (``_convert_weight_to_int4pack_for_cpu``) and each group as ``(q - 8) * scale + offset``, so the layer keeps
  that second copy of its codes (half a byte per weight) while the kernel is in use;
* ``"dynamic-fbgemm"``, ``"dynamic-onednn"``: ``torch.ops.quantized.linear_dynamic`` with the weight packed for
  that engine, for the same int8 per-channel layers. These multiply int8 by int8 (VNNI/AMX instructions where the
  CPU has them): each call quantizes its float32 input to 8 bits with one scale and zero point for the whole
  input, so they compute other numbers than the weight-only kernels (W8A8). They are candidates only where
  activation quantization was allowed (``choose_kernels(..., activations=(torch.int8,))``), judged with
  ``TOLERANCE[torch.int8]``. The packed weight is the engine's own object (not a tensor: it is not saved, and
  stays on the CPU) and takes memory beside the codes: their bytes again with fbgemm, twice them with oneDNN.

:func:`~.tuning.choose_kernels` tries the candidates on a model's layers, grouped by kind (shape and format): a
candidate must first reproduce the plain path's output on random inputs within :data:`TOLERANCE` (relative to the
output's largest value), then race the plain path over the real weights in alternating rounds; the fastest wins,
and the plain path stays unless another beats it by more than :data:`MARGIN`. A race keeps the quickest round of
each candidate, the one least disturbed by other work on the machine.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import nn

PLAIN = "plain"
MARGIN = 0.03  # a kernel must be this much faster than the plain path to replace it: smaller gaps are noise
DYNAMIC = torch.int8  # in ``activations``: products may quantize their float32 input to int8 on the fly (W8A8)
# relative to the plain path's largest output; torch.int8: the error of 8-bit activations, measured at about 1e-2
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 2e-2, DYNAMIC: 3e-2}
BUDGET_S = 0.2  # time spent racing the candidates of one kind of layer
MIN_ROUNDS = 5  # a race of fewer rounds is easily decided by another process taking the CPU once
RACE_WEIGHTS = 16 * 2**20  # weights multiplied per round of a race (64 MB in float32)
INT4_GROUP_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class Kernel:
    """A way to compute ``rows @ W^T`` (without bias) for a quantized layer."""

    name: str
    applies: Callable[[nn.Module], bool]  # does the layer's format suit the kernel?
    # (kernel_weight, kernel_scales); the weight may be an op's own packed object instead of a tensor
    prepare: Callable[[nn.Module], tuple[Any, torch.Tensor | None]]
    # (layer, rows (M, in), kernel_weight, kernel_scales) -> (M, out)
    run: Callable[[nn.Module, torch.Tensor, Any, torch.Tensor | None], torch.Tensor]
    quantizes_input: bool = False  # quantizes its float32 input to int8 itself (W8A8), so only with DYNAMIC


def _has_op(name: str) -> bool:
    return hasattr(torch.ops.aten, name)


def _plain_run(layer: nn.Module, rows: torch.Tensor, weight: None = None, scales: None = None) -> torch.Tensor:
    return torch.nn.functional.linear(rows, layer.dequantize(rows.dtype))


def _int8_per_channel(layer: nn.Module) -> bool:
    return (layer.bits == 8 and layer.codes.dtype == torch.int8 and layer.zero_point == 0
            and layer.minimums is None and layer.group_size == layer.in_features)


def _int8_applies(layer: nn.Module) -> bool:
    return _has_op("_weight_int8pack_mm") and _int8_per_channel(layer)


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


@lru_cache(maxsize=1)
def reduce_range() -> bool:
    """Whether dynamic kernels must quantize activations to 7 bits: CPUs without VNNI multiply unsigned by signed
    bytes with an instruction that saturates sums of two products at 16 bits, which 8-bit activations can
    overflow; VNNI (and AMX) accumulate in 32 bits."""
    from ..nn.autotune import cpu_description

    flags = set(cpu_description()[1].split())
    return not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


def _dynamic_kernel(engine: str) -> Kernel:
    """``quantized::linear_dynamic`` on a weight packed by ``engine`` (fbgemm or onednn)."""
    def applies(layer: nn.Module) -> bool:
        return (engine in torch.backends.quantized.supported_engines and layer.codes.device.type == "cpu"
                and hasattr(torch.ops.quantized, "linear_dynamic") and hasattr(torch.ops.quantized, "linear_prepack")
                and _int8_per_channel(layer) and int(layer.codes.min()) > -128)  # the engines want -127..127

    def prepare(layer: nn.Module) -> tuple[Any, None]:
        scales = layer.scales[:, 0].double()  # (out,): one scale per output channel, zero points 0
        zeros = torch.zeros(layer.out_features, dtype=torch.long)
        previous = torch.backends.quantized.engine
        try:
            torch.backends.quantized.engine = engine  # the packed object remembers its engine
            with warnings.catch_warnings():  # PyTorch deprecates quantized tensors; a removal drops the candidate
                warnings.simplefilter("ignore", UserWarning)
                weight = torch._make_per_channel_quantized_tensor(layer.codes, scales, zeros, 0)
                return torch.ops.quantized.linear_prepack(weight, None), None
        finally:
            torch.backends.quantized.engine = previous

    def run(layer: nn.Module, rows: torch.Tensor, weight: Any, scales: None) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(rows, weight, reduce_range())

    return Kernel(f"dynamic-{engine}", applies, prepare, run, quantizes_input=True)


KERNELS = {
    PLAIN: Kernel(PLAIN, lambda layer: True, lambda layer: (None, None), _plain_run),
    "int8pack": Kernel("int8pack", _int8_applies, _int8_prepare, _int8_run),
    "int4pack": Kernel("int4pack", _int4_applies, _int4_prepare, _int4_run),
    "dynamic-fbgemm": _dynamic_kernel("fbgemm"),
    "dynamic-onednn": _dynamic_kernel("onednn"),
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
    packed = None if weight is None or isinstance(weight, torch.Tensor) else weight  # an op's object: no buffer
    layer.kernel_weight = None if packed is not None else weight
    layer.kernel_packed, layer.kernel_scales = packed, scales
    layer.kernel, layer.kernel_rows, layer.kernel_dtype, layer.kernel_error = name, rows, dtype, 0.0


def kernel_error(layer: nn.Module, name: str, rows: int, dtype: torch.dtype, seed: int = 0,
                 reference_dtype: torch.dtype | None = None) -> float:
    """Largest difference between kernel ``name`` on inputs in ``dtype`` and the plain path on the same random
    inputs in ``reference_dtype`` (default: ``dtype``), relative to the largest output of the plain path."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, layer.in_features, generator=g).to(device=layer.codes.device)
    with torch.no_grad():
        ref = _plain_run(layer, x.to(reference_dtype or dtype)).float()
        out = KERNELS[name].run(layer, x.to(dtype), *layer.kernel_operands()).float()
    return float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
