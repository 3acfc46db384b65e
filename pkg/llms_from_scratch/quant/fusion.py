"""Stacking the quantized projections that read the same input into one layer: one product instead of three
(query, key, value) or two (SwiGLU's gate and up).

A decode step multiplies a single row by every weight matrix; with small matrices the fixed cost of a call is a
visible share of the step, so fewer, taller products are faster. The stacked weight is built from the quantized
rows themselves (:func:`~.weight.stack_rows`), so no float copy appears and the outputs are the same numbers.
The blocks are replaced by :class:`~llms_from_scratch.nn.decode_layout.FusedQKVAttention` and
:class:`~llms_from_scratch.nn.decode_layout.FusedGateUpSwiGLU`, whose ``forward`` is the original block's.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ..nn.attention import GroupedQueryAttention
from ..nn.decode_layout import FusedGateUpSwiGLU, FusedQKVAttention
from ..nn.ffn import SwiGLU
from .kernels import BUDGET_S, MARGIN, MIN_ROUNDS, RACE_WEIGHTS
from .linear import QuantizedLinear
from .model import replace_module
from .tuning import choose_kernels
from .weight import stack_rows


def _stacked(layers: list[nn.Module]) -> QuantizedLinear | None:
    """One :class:`QuantizedLinear` computing ``layers`` side by side, or None where they cannot be stacked."""
    if not all(type(layer) is QuantizedLinear and layer.bias is None for layer in layers):
        return None
    try:
        return QuantizedLinear(stack_rows([layer.quantized_weight() for layer in layers]))
    except ValueError:  # formats that differ (a file may store q and v in different block formats)
        return None


def stack_projections(model: nn.Module) -> nn.Module:
    """Replace, in place, every attention block whose query/key/value layers are quantized alike by one with a
    single stacked ``qkv`` layer, and every SwiGLU block likewise (``gate_up``); returns ``model``. Kernels are
    chosen afterwards (``choose_kernels``): the stacked layers are new kinds of layers."""
    for name, module in list(model.named_modules()):
        if type(module) is GroupedQueryAttention:
            fused_class = FusedQKVAttention
        elif type(module) is SwiGLU:
            fused_class = FusedGateUpSwiGLU
        else:
            continue
        stacked = _stacked(fused_class.projections(module))
        if stacked is not None:
            replace_module(model, name, fused_class(module, stacked))
    return model


@torch.no_grad()
def choose_stacking(model: nn.Module, rows: int = 1, dtype: torch.dtype = torch.float32,
                    activations: tuple[torch.dtype, ...] = (), budget_s: float = BUDGET_S) -> nn.Module:
    """Choose kernels for ``model`` (``choose_kernels``), then stack the projections of each kind of block
    (:func:`stack_projections`) where one stacked product of ``rows`` rows beats the separate products on this
    machine, each with its own fastest kernel; returns ``model``, changed in place.

    The race runs on as many blocks of a kind as hold about :data:`~.kernels.RACE_WEIGHTS` weights, so the
    stacked copies built for it stay small; a kind that wins is stacked block by block, each block's separate
    layers freed as its stacked one takes their place.
    """
    choose_kernels(model, rows, dtype, activations=activations)
    kinds: dict[str, list[tuple[str, nn.Module, type]]] = {}
    for name, module in model.named_modules():
        fused_class = {GroupedQueryAttention: FusedQKVAttention, SwiGLU: FusedGateUpSwiGLU}.get(type(module))
        if fused_class is None:
            continue
        layers = fused_class.projections(module)
        if all(type(layer) is QuantizedLinear for layer in layers):
            key = fused_class.__name__ + " " + " ".join(repr(layer) for layer in layers)
            kinds.setdefault(key, []).append((name, module, fused_class))
    for items in kinds.values():
        per_block = sum(layer.in_features * layer.out_features for layer in items[0][2].projections(items[0][1]))
        sample = items[:max(1, RACE_WEIGHTS // per_block)]
        separate = [items_layers for _, module, fused_class in sample
                    for items_layers in [fused_class.projections(module)]]
        stacked = [_stacked(layers) for layers in separate]
        if any(layer is None for layer in stacked):
            continue
        choose_kernels(nn.ModuleList(stacked), rows, dtype, activations=activations)
        if not _stacking_wins(separate, stacked, rows, dtype, budget_s):
            continue
        stacked.clear()  # the race's copies go before the real ones are built
        new_layers = []
        for name, module, fused_class in items:
            new_layers.append(_stacked(fused_class.projections(module)))
            replace_module(model, name, fused_class(module, new_layers[-1]))
        choose_kernels(nn.ModuleList(new_layers), rows, dtype, activations=activations)
    return model


def _stacking_wins(separate: list[list[nn.Module]], stacked: list[nn.Module], rows: int, dtype: torch.dtype,
                   budget_s: float) -> bool:
    """Whether the ``stacked`` layers compute ``rows`` rows faster than the ``separate`` ones they stand for."""
    x = torch.randn(rows, separate[0][0].in_features).to(dtype=dtype, device=separate[0][0].codes.device)
    runs = {"separate": lambda: [layer(x) for layers in separate for layer in layers],
            "stacked": lambda: [layer(x) for layer in stacked]}
    times = _race(runs, budget_s)
    return times["stacked"] < (1 - MARGIN) * times["separate"]


def _race(runs: dict[str, object], budget_s: float) -> dict[str, float]:
    """Quickest time of each run over alternating rounds (at least :data:`~.kernels.MIN_ROUNDS`)."""
    best = dict.fromkeys(runs, float("inf"))
    for fn in runs.values():
        fn()
    start, rounds = time.perf_counter(), 0
    names = list(runs)
    while rounds < MIN_ROUNDS or time.perf_counter() - start < budget_s:
        for name in names if rounds % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            runs[name]()
            best[name] = min(best[name], time.perf_counter() - t0)
        rounds += 1
    return best
