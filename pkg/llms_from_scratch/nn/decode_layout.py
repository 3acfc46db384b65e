"""A memory layout for fast decoding: the same weights, stored so that batch-1 matrix products read them well.

Decoding one token at a time multiplies a single activation row by every weight matrix; the step is bound by
how fast the weights stream from memory, not by arithmetic. Two layout changes help on CPUs, and neither
changes a single value:

* **column-major weights.** ``nn.Linear`` keeps its weight as (out_features, in_features), row by row. For a
  single input row, MKL's kernels stream a weight stored the other way round, (in, out) row by row, close to the
  memory bandwidth, and the (out, in) one at about half of it (measured here on the 768 x 50,257 GPT-2 output
  head at batch 1 with one thread: 12.7 ms against 6.7 ms; at batch 8 both took 27.5 ms). GPT-2's original
  ``Conv1D`` stores its weights that way for the same reason. The parameter keeps its shape (out, in); only its
  strides change, so ``F.linear``, ``state_dict`` and every loader see the same tensor.
* **fused projections.** Linear layers that read the same input (the query, key and value projections; the
  gate and up projections of SwiGLU) become one matrix product over their weights stacked into one block, which
  saves the per-call overhead that dominates small layers. Each layer's parameters become *views* into that
  block, so training, ``load_state_dict`` and optimizers keep working on them, and the block stays in sync.
  The fused product is used only without autograd (generation); if a parameter is replaced (``model.to(...)``,
  assigning ``.data``), the module notices and falls back to its separate layers.

>>> prepare_for_decoding(model, batch_size=1)  # once, after loading and before generating
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SMALL_BATCH = 1  # measured faster at batch 1 (and slower at batch 8); sizes in between were not measured


def set_weight_layout(linear: nn.Linear, *, column_major: bool) -> None:
    """Store ``linear.weight`` column-major ((in, out) contiguous) or row-major; values and shape (out, in) stay."""
    w = linear.weight.data
    if column_major and not w.t().is_contiguous():
        linear.weight.data = w.t().contiguous().t()
    elif not column_major and not w.is_contiguous():
        linear.weight.data = w.contiguous()


class FusedProjection:
    """One matrix product standing in for several ``nn.Linear`` layers that read the same input.

    Not an ``nn.Module`` on purpose: it owns no parameters of its own (the layers' parameters are views into its
    block), so it adds nothing to ``state_dict`` or ``parameters()``.
    """

    def __init__(self, linears: Sequence[nn.Linear]) -> None:
        has_bias = {lin.bias is not None for lin in linears}
        if len(has_bias) != 1:
            raise ValueError("fusing linear layers needs all of them with a bias or all without")
        self.linears = list(linears)
        self.sizes = [lin.out_features for lin in linears]
        stacked = torch.cat([lin.weight.detach() for lin in linears], dim=0)  # (sum of out_features, in_features)
        self.weight = stacked.t().contiguous().t()  # same values, column-major (see the module docstring)
        self.bias = torch.cat([lin.bias.detach() for lin in linears]) if has_bias.pop() else None
        start = 0
        for lin, size in zip(self.linears, self.sizes):
            lin.weight.data = self.weight[start : start + size]
            if self.bias is not None:
                lin.bias.data = self.bias[start : start + size]
            start += size
        self._pointers = [lin.weight.data_ptr() for lin in self.linears]

    def usable(self) -> bool:
        """True while autograd is off and the layers' weights are still the views into this block."""
        return not torch.is_grad_enabled() and all(
            lin.weight.data_ptr() == ptr for lin, ptr in zip(self.linears, self._pointers))

    def release(self) -> None:
        """Give every layer its own row-major weight (and bias) again; the block is freed with this object."""
        for lin in self.linears:
            lin.weight.data = lin.weight.data.contiguous()
            if lin.bias is not None:
                lin.bias.data = lin.bias.data.clone()

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``x`` (..., in_features) -> one output per fused layer, each (..., its out_features)."""
        return F.linear(x, self.weight, self.bias).split(self.sizes, dim=-1)


def set_fused(current: FusedProjection | None, linears: Sequence[nn.Linear], enabled: bool) -> FusedProjection | None:
    """What a module stores after switching fusion of ``linears`` on or off (``current``: what it stores now)."""
    if enabled:
        return current if current is not None and current.usable() else FusedProjection(linears)
    if current is not None:
        current.release()
    return None


def prepare_for_decoding(model: nn.Module, batch_size: int = 1) -> nn.Module:
    """Store ``model``'s weights in the layout that decodes ``batch_size`` rows per step fastest on a CPU.

    Up to :data:`SMALL_BATCH` rows: projections that share their input are fused and every weight is stored
    column-major. For larger batches the plain layout (separate layers, row-major) was faster here, so this
    restores it. Values never change; outputs equal the plain model's up to float rounding. Returns ``model``.
    """
    small = batch_size <= SMALL_BATCH
    fused: set[int] = set()
    for module in model.modules():
        fuse = getattr(module, "fuse_projections", None)
        if callable(fuse):
            fuse(small)
            if small:
                fused.update(id(lin) for lin in module.fusable_linears())
    for module in model.modules():
        if isinstance(module, nn.Linear) and id(module) not in fused:
            set_weight_layout(module, column_major=small)
    return model
