"""Choosing a kernel for every kind of quantized layer in a model by measuring them on this machine.

See :mod:`.kernels` for the candidates and the rules of the race.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from .kernels import (
    BUDGET_S,
    KERNELS,
    MARGIN,
    MIN_ROUNDS,
    PLAIN,
    RACE_WEIGHTS,
    TOLERANCE,
    kernel_candidates,
    kernel_error,
    set_kernel,
)
from .linear import QuantizedLinear


def choose_kernels(model: nn.Module, rows: int = 1, dtype: torch.dtype = torch.float32,
                   budget_s: float = BUDGET_S) -> dict[str, str]:
    """Measure the kernel candidates for every kind of quantized layer in ``model`` and keep the fastest that
    agrees with the plain path; returns {kind: kernel}. ``rows`` is the number of input rows to tune for (the
    batch size when decoding one token per sequence)."""
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
