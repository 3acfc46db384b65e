"""Faster matrix products for :class:`~.linear.QuantizedLinear` from PyTorch itself, chosen by measuring.

Candidates (:data:`KERNELS`), each offered only where this PyTorch has the op and the layer has its layout:

* ``"plain"``: dequantize the weight, then ``F.linear``; always available, the reference for the others;
* ``"int8pack"``: ``torch.ops.aten._weight_int8pack_mm``, for signed 8-bit codes with one scale per output
  channel (``int8`` per-channel); it reads the codes as they are stored;
* ``"int4pack"``: ``torch.ops.aten._weight_int4pack_mm_for_cpu``, for 4-bit codes in groups of 32, 64, 128 or
  256 (``int4``, ``q4_0``, ``q4_1``). It wants the codes in its own tiled layout
  (``_convert_weight_to_int4pack_for_cpu``) and each group as ``(q - 8) * scale + offset``, so the layer keeps
  that second copy of its codes (half a byte per weight) while the kernel is in use.

:func:`choose_kernels` tries the candidates on a model's layers, grouped by kind (shape and format): a
candidate must first reproduce the plain path's output on random inputs within :data:`TOLERANCE` (relative to the
output's largest value), then race the plain path over the real weights in alternating rounds; the fastest wins,
and the plain path stays unless another beats it by more than :data:`MARGIN`. A race keeps the quickest round of
each candidate, the one least disturbed by other work on the machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

PLAIN = "plain"
MARGIN = 0.03  # a kernel must be this much faster than the plain path to replace it: smaller gaps are noise
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 2e-2}
BUDGET_S = 0.2  # time spent racing the candidates of one kind of layer
MIN_ROUNDS = 3
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


def set_kernel(layer: nn.Module, name: str, rows: int = 1, dtype: torch.dtype = torch.float32,
               error: float = 0.0) -> None:
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
    layer.kernel, layer.kernel_rows, layer.kernel_dtype, layer.kernel_error = name, rows, dtype, error


def kernel_error(layer: nn.Module, name: str, rows: int, dtype: torch.dtype, seed: int = 0) -> float:
    """Largest difference between kernel ``name`` and the plain path on random inputs, relative to the largest
    output of the plain path."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, layer.in_features, generator=g).to(dtype=dtype, device=layer.codes.device)
    with torch.no_grad():
        ref = _plain_run(layer, x).float()
        out = KERNELS[name].run(layer, x, layer.kernel_weight, layer.kernel_scales).float()
    return float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def choose_kernels(model: nn.Module, rows: int = 1, dtype: torch.dtype = torch.float32,
                   budget_s: float = BUDGET_S) -> dict[str, str]:
    """Measure the kernel candidates for every kind of quantized layer in ``model`` and keep the fastest that
    agrees with the plain path; returns {kind: kernel}. ``rows`` is the number of input rows to tune for (the
    batch size when decoding one token per sequence)."""
    from .linear import QuantizedLinear

    kinds: dict[str, list[QuantizedLinear]] = {}
    for module in model.modules():
        if isinstance(module, QuantizedLinear):
            key = (f"{module.scheme} g{module.group_size} {module.out_features}x{module.in_features}"
                   f"{' sym' if module.zeros is None else ''}{' min' if module.minimums is not None else ''}")
            kinds.setdefault(key, []).append(module)
    chosen = {}
    for key, layers in kinds.items():
        chosen[key] = _choose_for_kind(layers, rows, dtype, budget_s)
    return chosen


def _choose_for_kind(layers: list[nn.Module], rows: int, dtype: torch.dtype, budget_s: float) -> str:
    errors = {}
    for name in kernel_candidates(layers[0]):
        if name == PLAIN:
            continue
        try:
            set_kernel(layers[0], name, rows, dtype)
            errors[name] = kernel_error(layers[0], name, rows, dtype)
        except (RuntimeError, ValueError):  # an op that refuses this shape just drops out
            continue
        if errors[name] > TOLERANCE.get(dtype, 2e-2):
            errors.pop(name)
    for layer in layers:
        layer.kernel = PLAIN
        layer.kernel_weight = layer.kernel_scales = None
    if not errors:
        return PLAIN
    # enough layers of the kind that their weights do not fit in a core's caches, as in a real decode step
    per_layer = layers[0].in_features * layers[0].out_features
    raced = layers[:max(1, RACE_WEIGHTS // per_layer)]
    times = _race(raced, [PLAIN, *errors], rows, dtype, budget_s)
    best = min(times, key=times.get)
    if best == PLAIN or times[best] > (1 - MARGIN) * times[PLAIN]:
        return PLAIN
    for layer in layers:  # every layer is checked on its own weights before it switches
        set_kernel(layer, best, rows, dtype)
        error = kernel_error(layer, best, rows, dtype)
        if error > TOLERANCE.get(dtype, 2e-2):
            layer.kernel, layer.kernel_weight, layer.kernel_scales = PLAIN, None, None
        else:
            layer.kernel_error = error
    return best


def _race(layers: list[nn.Module], names: list[str], rows: int, dtype: torch.dtype, budget_s: float
          ) -> dict[str, float]:
    """Quickest time of each kernel over all ``layers`` (alternating order, at least MIN_ROUNDS rounds)."""
    def prepare(name: str, layer: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        weight, scales = KERNELS[name].prepare(layer)
        return weight, None if scales is None else scales.to(dtype)

    prepared = {name: [prepare(name, layer) for layer in layers] for name in names}
    x = torch.randn(rows, layers[0].in_features).to(dtype=dtype, device=layers[0].codes.device)
    best = dict.fromkeys(names, float("inf"))
    start, rounds = time.perf_counter(), 0
    with torch.no_grad():
        while rounds < MIN_ROUNDS or time.perf_counter() - start < budget_s:
            order = names[rounds % len(names):] + names[:rounds % len(names)]
            for name in order:
                kernel = KERNELS[name]
                t0 = time.perf_counter()
                for layer, (weight, scales) in zip(layers, prepared[name]):
                    kernel.run(layer, x, weight, scales)
                best[name] = min(best[name], time.perf_counter() - t0)
            rounds += 1
    return best
