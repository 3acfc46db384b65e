"""GPTQ (Frantar et al., 2022): quantize a weight one column at a time and let the columns still to come absorb
the rounding error, weighted by how the layer's inputs correlate.

A linear layer's output error for inputs ``X`` (tokens, in) is ``||X (W - Q)^T||^2``; with the input Hessian
``H = 2 X^T X / tokens`` (in, in) the extra loss of quantizing column ``j`` and then optimally changing the
remaining columns ``F`` is ``err_j^2 / [H_F^-1]_jj`` and the change is ``-err_j / [H_F^-1]_jj * [H_F^-1]_{j,F}``.
Processing columns left to right, the needed rows of every ``H_F^-1`` are the rows of the upper Cholesky factor
``U`` of ``H^-1`` (scaled), so one Cholesky decomposition serves all columns. Columns go in blocks of
``block_size``: updates inside a block are applied at once, updates to later columns are collected and applied as
one matrix product per block (the "lazy batch" that makes it fast).

Group-wise grids are fitted when the loop reaches a group's first column, on the weights as updated so far;
block boundaries are aligned with group boundaries so that those weights are always current.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from .grid import Grid
from .linear import QuantizedLinear
from .model import replace_module, selected_linears
from .rtn import group_count, to_quantized_weight
from .schemes import default_group_size, scheme_grid
from .tuning import choose_kernels
from .weight import QuantizedWeight


class HessianAccumulator:
    """Running ``2 X^T X / tokens`` of the inputs a linear layer sees; hook it onto the layer."""

    def __init__(self, in_features: int, device: torch.device | str = "cpu") -> None:
        self.hessian = torch.zeros(in_features, in_features, device=device)
        self.tokens = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).float()  # (tokens, in)
        n = x.shape[0]
        total = self.tokens + n
        # rescale the running mean, then add the new tokens' share
        self.hessian *= self.tokens / total
        x = x * (2.0 / total) ** 0.5
        self.hessian += x.T @ x
        self.tokens = total

    def hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.add(inputs[0])


class _SharedHessians:
    """One :class:`HessianAccumulator` per distinct input: layers called one after the other on the very same
    input tensor (query, key and value; SwiGLU's gate and up) share one instead of computing it again."""

    def __init__(self) -> None:
        self.accumulators: dict[str, HessianAccumulator] = {}
        self._last: tuple[torch.Tensor, HessianAccumulator] | None = None

    def hook(self, name: str) -> Callable:
        def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            x = inputs[0]
            if self._last is not None and x is self._last[0]:
                self.accumulators.setdefault(name, self._last[1])  # already added by the previous layer
                return
            acc = self.accumulators.setdefault(name, HessianAccumulator(x.shape[-1], x.device))
            acc.add(x)
            self._last = (x, acc)

        return record


def _block_size(cols: int, group: int, requested: int) -> int:
    """A block size near ``requested`` with group boundaries on block boundaries."""
    if group <= requested:
        return requested // group * group
    return max(d for d in range(1, requested + 1) if group % d == 0)


@torch.no_grad()
def gptq_quantize(weight: torch.Tensor, hessian: torch.Tensor, grid: Grid, group_size: int | None,
                  block_size: int = 128, damp: float = 0.01, scheme: str = "") -> QuantizedWeight:
    """Quantize ``weight`` (out, in) on ``grid`` with GPTQ, given the input Hessian (in, in)."""
    rows, cols = weight.shape
    group = cols // group_count(cols, group_size)
    w = weight.detach().float().clone()
    h = hessian.detach().float().clone().to(w.device)
    dead = torch.diag(h) == 0  # inputs that were always zero: their weights do not matter
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    # dampening keeps H positive definite (and the updates tame) when inputs are nearly collinear
    h += damp * torch.diag(h).mean() * torch.eye(cols, device=w.device)
    h_inv = torch.cholesky_inverse(torch.linalg.cholesky(h))
    u = torch.linalg.cholesky(h_inv, upper=True)  # (in, in); row j holds what column j passes on

    codes = torch.zeros(rows, cols, device=w.device)
    scales = torch.zeros(rows, cols // group, device=w.device)
    zeros = torch.zeros(rows, cols // group, device=w.device)
    block = _block_size(cols, group, block_size)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1 = w[:, i1:i2].clone()  # the block's columns, updated as the loop goes
        errs = torch.zeros(rows, i2 - i1, device=w.device)
        u1 = u[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if col % group == 0:
                # a new group starts: fit its grid on its columns as they are now
                current = w1[:, i:i + group] if group <= block else w[:, col:col + group]
                scale, zero = grid.fit(current)
                scales[:, col // group], zeros[:, col // group] = scale, zero
            q = grid.quantize(w1[:, i], scale, zero)
            codes[:, col] = q
            err = (w1[:, i] - grid.dequantize(q, scale, zero)) / u1[i, i]
            w1[:, i:] -= err[:, None] * u1[i, i:][None, :]  # the rest of the block absorbs the error
            errs[:, i] = err
        w[:, i2:] -= errs @ u[i1:i2, i2:]  # the lazy batch update of all later columns
    return to_quantized_weight(codes, scales, zeros, grid, scheme)


def _find_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's stack of repeated blocks: the list module with the most children holding linear layers."""
    best: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)):
            children = list(module.children())
            holding = [c for c in children if any(type(m) is nn.Linear for m in c.modules())]
            if len(holding) == len(children) and len(children) > len(best):
                best = children
    return best


class _StopForward(Exception):
    pass


@torch.no_grad()
def gptq_quantize_model(model: nn.Module, calibration: Iterable[torch.Tensor], scheme: str = "int4",
                        group_size: int | None = None, *, symmetric: bool | None = None, head: bool = False,
                        sequential: bool = True, block_size: int = 128, damp: float = 0.01, kernel: str = "auto",
                        rows: int = 1, grid: Grid | None = None) -> nn.Module:
    """Replace ``model``'s linear layers by GPTQ-quantized ones, fitted on the ``calibration`` batches of token
    ids (each a valid input to ``model``); returns ``model``.

    ``scheme`` is ``"int4"`` or ``"int8"``; ``group_size``, ``symmetric``, ``head``, ``kernel`` and ``rows`` mean
    what they mean for :func:`~.model.quantize_model`. With ``sequential=True`` (as in the paper) the blocks are
    quantized in order, each calibrated on the outputs of the already quantized blocks before it; otherwise every
    layer is calibrated on the full-precision model in one pass. ``grid`` replaces the scheme's grid (e.g.
    ``Grid(3, symmetric=False)`` for 3-bit codes, stored in 4-bit containers).
    """
    if kernel not in ("auto", "plain"):
        raise ValueError(f"kernel must be 'auto' or 'plain', got {kernel!r}")
    grid = grid or scheme_grid(scheme, symmetric)
    group_size = default_group_size(scheme, group_size)
    batches = list(calibration)
    if not batches:
        raise ValueError("GPTQ needs at least one calibration batch of token ids")
    was_training = model.training
    model.eval()
    todo = dict(selected_linears(model, head))

    def quantize_layers(names: list[str], run: Callable[[], object]) -> None:
        hessians = _SharedHessians()
        handles = [todo[n].register_forward_hook(hessians.hook(n)) for n in names]
        try:
            run()
        finally:
            for handle in handles:
                handle.remove()
        accumulators = hessians.accumulators
        for n in names:
            linear = todo.pop(n)
            qw = gptq_quantize(linear.weight, accumulators[n].hessian, grid, group_size, block_size, damp, scheme)
            replace_module(model, n, QuantizedLinear(qw, linear.bias))

    if sequential:
        blocks = _find_blocks(model)
        if blocks:
            inputs = _block_inputs(model, blocks[0], batches)
            for block in blocks:
                names = [n for n, m in todo.items() if any(m is b for b in block.modules())]

                def run_block(block=block, inputs=inputs):
                    for args, kwargs in inputs:
                        block(*args, **kwargs)

                quantize_layers(names, run_block)
                # the next block sees what this (now quantized) block outputs
                inputs = [((_hidden(block(*args, **kwargs)), *args[1:]), kwargs) for args, kwargs in inputs]

    if todo:  # everything outside the blocks (or all layers, when not sequential): one pass of the model
        quantize_layers(list(todo), lambda: [model(batch) for batch in batches])
    model.train(was_training)
    if kernel == "auto":
        choose_kernels(model, rows=rows)
    return model


def _hidden(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    raise TypeError(f"sequential GPTQ needs blocks that return a tensor, got {type(output).__name__}; "
                    "pass sequential=False")


def _block_inputs(model: nn.Module, first: nn.Module, batches: list[torch.Tensor]) -> list[tuple[tuple, dict]]:
    """The positional and keyword arguments the first block receives for each calibration batch."""
    seen: list[tuple[tuple, dict]] = []

    def catch(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if not args or not isinstance(args[0], torch.Tensor):
            raise TypeError("sequential GPTQ needs blocks whose first argument is the hidden state; "
                            "pass sequential=False")
        seen.append((args, kwargs))
        raise _StopForward

    handle = first.register_forward_pre_hook(catch, with_kwargs=True)
    try:
        for batch in batches:
            try:
                model(batch)
            except _StopForward:
                pass
    finally:
        handle.remove()
    return seen
