"""Choosing a kernel for every kind of quantized layer in a model by measuring them on this machine.

See :mod:`.kernels` for the candidates and the rules of the race.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from .kernels import (
    BUDGET_S,
    DYNAMIC,
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
                   budget_s: float = BUDGET_S, activations: tuple[torch.dtype, ...] = ()) -> dict[str, str]:
    """Measure the kernel candidates for every kind of quantized layer in ``model`` and keep the fastest that
    agrees with the plain path; returns {kind: kernel} (``"kernel bfloat16"`` where the product runs on cast
    activations). ``rows`` is the number of input rows to tune for (the batch size when decoding one token per
    sequence), ``dtype`` the dtype the model computes in.

    ``activations`` allows products in other dtypes too (e.g. ``(torch.bfloat16,)``): a layer then casts its
    input to that dtype for the product and the output back (see ``QuantizedLinear.compute_dtype``), if that is
    faster and within that dtype's tolerance of the plain path in ``dtype``. ``torch.int8`` in ``activations``
    (for a float32 model) allows the kernels that quantize each input to 8 bits themselves (W8A8, ``"int8"`` in
    the returned names); they race the others on the same terms and the plain path stays a candidate.
    """
    kinds: dict[str, list[QuantizedLinear]] = {}
    for module in model.modules():
        if isinstance(module, QuantizedLinear):
            module.compute_dtype = None
            key = (f"{module.scheme} g{module.group_size} {module.out_features}x{module.in_features}"
                   f"{' sym' if module.zeros is None else ''}{' min' if module.minimums is not None else ''}")
            kinds.setdefault(key, []).append(module)
    chosen = {}
    for key, layers in kinds.items():
        name, act = _choose_for_kind(layers, rows, dtype, budget_s, tuple(a for a in activations if a != dtype))
        chosen[key] = name if act == dtype else f"{name} {str(act).removeprefix('torch.')}"
    return chosen


Candidate = tuple[str, torch.dtype]  # (kernel, dtype of the activations it multiplies; DYNAMIC: int8 it makes)


def _input_dtype(act: torch.dtype, dtype: torch.dtype) -> torch.dtype:
    """The dtype a candidate's kernel receives: a W8A8 kernel quantizes the model's own activations itself."""
    return dtype if act == DYNAMIC else act


def _set(layer: QuantizedLinear, candidate: Candidate, rows: int, dtype: torch.dtype) -> None:
    name, act = candidate
    act = _input_dtype(act, dtype)
    layer.compute_dtype = None if act == dtype else act
    if name == PLAIN:
        layer.kernel, layer.kernel_weight, layer.kernel_packed, layer.kernel_scales = PLAIN, None, None, None
    else:
        set_kernel(layer, name, rows, act)


def _error(layer: QuantizedLinear, candidate: Candidate, rows: int, dtype: torch.dtype) -> float:
    name, act = candidate
    return kernel_error(layer, name, rows, _input_dtype(act, dtype), reference_dtype=dtype)


def _fits(name: str, act: torch.dtype, dtype: torch.dtype) -> bool:
    """Kernels that quantize their input run only where that was allowed, and on float32 activations only."""
    if KERNELS[name].quantizes_input:
        return act == DYNAMIC and dtype == torch.float32
    return act != DYNAMIC


def _choose_for_kind(layers: list[nn.Module], rows: int, dtype: torch.dtype, budget_s: float,
                     activations: tuple[torch.dtype, ...]) -> Candidate:
    plain: Candidate = (PLAIN, dtype)
    errors: dict[Candidate, float] = {}
    for act in (dtype, *activations):
        for name in kernel_candidates(layers[0]):
            candidate = (name, act)
            if candidate == plain or not _fits(name, act, dtype):
                continue
            try:
                _set(layers[0], candidate, rows, dtype)
                errors[candidate] = _error(layers[0], candidate, rows, dtype)
            except (RuntimeError, ValueError):  # an op that refuses this shape or dtype just drops out
                continue
            if errors[candidate] > TOLERANCE.get(act, 2e-2):
                errors.pop(candidate)
    for layer in layers:
        _set(layer, plain, rows, dtype)
    if not errors:
        return plain
    # enough layers of the kind that their weights do not fit in a core's caches, as in a real decode step
    per_layer = layers[0].in_features * layers[0].out_features
    raced = layers[:max(1, RACE_WEIGHTS // per_layer)]
    times = _race(raced, [plain, *errors], rows, dtype, budget_s)
    best = min(times, key=times.get)
    if best == plain or times[best] > (1 - MARGIN) * times[plain]:
        return plain
    for layer in layers:  # every layer is checked on its own weights before it switches
        _set(layer, best, rows, dtype)
        error = _error(layer, best, rows, dtype)
        if error > TOLERANCE.get(best[1], 2e-2):
            _set(layer, plain, rows, dtype)
        else:
            layer.kernel_error = error
    return best


def _race(layers: list[nn.Module], candidates: list[Candidate], rows: int, dtype: torch.dtype, budget_s: float
          ) -> dict[Candidate, float]:
    """Quickest time of each candidate over all ``layers`` (alternating order, at least MIN_ROUNDS rounds); a
    candidate in another dtype than ``dtype`` pays for casting its input and output."""
    def prepare(candidate: Candidate, layer: nn.Module) -> tuple[object, torch.Tensor | None]:
        weight, scales = KERNELS[candidate[0]].prepare(layer)
        return weight, None if scales is None else scales.to(_input_dtype(candidate[1], dtype))

    prepared = {c: [prepare(c, layer) for layer in layers] for c in candidates}
    x = torch.randn(rows, layers[0].in_features).to(dtype=dtype, device=layers[0].codes.device)
    best = dict.fromkeys(candidates, float("inf"))
    start, rounds = time.perf_counter(), 0
    with torch.no_grad():
        while rounds < MIN_ROUNDS or time.perf_counter() - start < budget_s:
            order = candidates[rounds % len(candidates):] + candidates[:rounds % len(candidates)]
            for candidate in order:
                name, act = candidate
                kernel, act = KERNELS[name], _input_dtype(act, dtype)
                t0 = time.perf_counter()
                for layer, (weight, scales) in zip(layers, prepared[candidate]):
                    kernel.run(layer, x.to(act), weight, scales).to(dtype)
                best[candidate] = min(best[candidate], time.perf_counter() - t0)
            rounds += 1
    return best
