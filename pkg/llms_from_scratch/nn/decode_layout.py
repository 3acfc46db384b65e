"""Decoding fast on a CPU: the same weights, multiplied by the kernel that streams them best for the rows at hand.

Decoding one token at a time multiplies a single activation row (or one per sequence of a batch) by every
weight matrix; the step is bound by how fast the weights stream from memory, not by arithmetic. Three changes
help on CPUs, and none changes a single stored value (measured here: 2 cores, fp32, the 48 GPT-2 124M block
matrices, 340 MB, cycled so that every product reads them from memory):

* **split products for 1-4 rows.** For an input of one row, ``F.linear`` reaches MKL's matrix-vector kernel,
  which streamed a row-major (out, in) weight at about half the memory bandwidth: 23-25 ms for the 48
  matrices, 12-15 ms for the 768 x 50,257 output head. Viewing the same weight as ``SPLIT_PARTS`` blocks of
  rows, (parts, out / parts, in), and multiplying all blocks by the input in one ``torch.bmm`` took 9-15 ms and
  3-4 ms, at 1 and 2 threads alike. No copy is needed: a row-major weight already is those blocks, one after
  the other. Used up to :data:`SPLIT_MAX_ROWS` rows, in float32 only (in bfloat16 it was slower).
* **oneDNN for more rows.** From 5 rows on (batched decoding, prefill), PyTorch's oneDNN linear kernel beat
  ``F.linear``'s MKL path at every size measured: at 8 rows 21 against 35-40 ms, at 512 rows 417-427 against
  488-534 ms.
* **fused projections.** Linear layers that read the same input (the query, key and value projections; the
  gate and up projections of SwiGLU) become one matrix product over their weights stacked into one block, which
  saves the per-call overhead that dominates small layers. Each layer's parameters become *views* into that
  block, so training, ``load_state_dict`` and optimizers keep working on them, and the block stays in sync.
  The fused product is used only without autograd (generation); if a parameter is replaced (``model.to(...)``,
  assigning ``.data``), the module notices and falls back to its separate layers.

All three are used only with autograd off, so training always takes the plain path.

>>> prepare_for_decoding(model, batch_size=1)  # once, after loading and before generating
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SMALL_BATCH = 1  # batch sizes decoded with fused projections (faster at 1; at 8 fused and separate measured alike)
SPLIT_MAX_ROWS = 4  # input rows up to which the split product is used (faster at 1-4 rows, not at 8)
SPLIT_PARTS = 4  # row blocks per weight: 2 and 4 measured alike, 4 leaves room for more threads


def _find_onednn_linear():
    """PyTorch's oneDNN linear kernel (the one ``torch.compile`` calls on CPUs), or None in builds without it."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_LINEAR = _find_onednn_linear()


def decode_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` computed by the kernel that was fastest here for the number of rows in ``x``.

    On CPUs, in float32, with a row-major weight (anything else takes ``F.linear``): up to :data:`SPLIT_MAX_ROWS`
    rows, one batched product over row blocks of the weight (:func:`split_linear`); more rows, PyTorch's oneDNN
    kernel (measured faster than ``F.linear`` from 5 to 512 rows).
    """
    if x.device.type != "cpu" or weight.dtype != torch.float32 or x.dtype != torch.float32 or not weight.is_contiguous():
        return F.linear(x, weight, bias)  # measured on CPUs in float32 only
    out_features, in_features = weight.shape
    rows = x.reshape(-1, in_features)  # (..., in) -> (M, in)
    m = rows.shape[0]
    if 0 < m <= SPLIT_MAX_ROWS and out_features >= SPLIT_PARTS:
        y = split_linear(rows, weight)
        if bias is not None:
            y = y + bias
    elif m > 0 and _ONEDNN_LINEAR is not None:
        y = _ONEDNN_LINEAR(rows, weight, bias, "none", [], "")
    else:
        return F.linear(x, weight, bias)
    return y.reshape(*x.shape[:-1], out_features)


def split_linear(rows: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``rows @ weight.T`` for a few ``rows`` (M, in) and a row-major ``weight`` (out, in), as one ``torch.bmm``
    over :data:`SPLIT_PARTS` blocks of the weight's rows. Returns (M, out)."""
    out_features, in_features = weight.shape
    m = rows.shape[0]
    main = out_features - out_features % SPLIT_PARTS  # rows that split evenly; the rest (< SPLIT_PARTS) go alone
    blocks = weight[:main].view(SPLIT_PARTS, main // SPLIT_PARTS, in_features)  # a view: no copy
    # (parts, out / parts, in) @ (parts, in, M) -> (parts, out / parts, M), which is (main, M) row by row
    y = torch.bmm(blocks, rows.t().expand(SPLIT_PARTS, in_features, m)).view(main, m)
    if main < out_features:
        y = torch.cat([y, weight[main:] @ rows.t()])  # (out, M)
    return y.t()


class DecodeLinear(nn.Linear):
    """``nn.Linear`` that takes :func:`decode_linear` when autograd is off.

    :func:`prepare_for_decoding` switches a plain ``nn.Linear`` to this class in place: the module, its
    parameters and its ``state_dict`` stay the same objects; only ``forward`` differs, and with autograd on it
    is ``nn.Linear``'s.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return F.linear(x, self.weight, self.bias)
        return decode_linear(x, self.weight, self.bias)


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
        self.weight = torch.cat([lin.weight.detach() for lin in linears], dim=0)  # (sum of out_features, in)
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
        """Give every layer its own weight (and bias) again; the block is freed with this object."""
        for lin in self.linears:
            lin.weight.data = lin.weight.data.clone()
            if lin.bias is not None:
                lin.bias.data = lin.bias.data.clone()

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``x`` (..., in_features) -> one output per fused layer, each (..., its out_features)."""
        return decode_linear(x, self.weight, self.bias).split(self.sizes, dim=-1)


def set_fused(current: FusedProjection | None, linears: Sequence[nn.Linear], enabled: bool) -> FusedProjection | None:
    """What a module stores after switching fusion of ``linears`` on or off (``current``: what it stores now)."""
    if enabled:
        return current if current is not None and current.usable() else FusedProjection(linears)
    if current is not None:
        current.release()
    return None


def prepare_for_decoding(model: nn.Module, batch_size: int = 1) -> nn.Module:
    """Set ``model`` up to decode ``batch_size`` rows per step fastest on a CPU; no stored value changes.

    Every plain ``nn.Linear`` becomes a :class:`DecodeLinear` (the kernel for the number of rows, see
    :func:`decode_linear`); up to :data:`SMALL_BATCH` rows, projections that share their input are also fused.
    Outputs equal the plain model's up to float rounding; training (autograd on) always runs the plain layers.
    Returns ``model``.
    """
    small = batch_size <= SMALL_BATCH
    for module in model.modules():
        fuse = getattr(module, "fuse_projections", None)
        if callable(fuse):
            fuse(small)
        # only exact nn.Linear switches: subclasses keep their own forward
        if type(module) is nn.Linear:
            module.__class__ = DecodeLinear
    return model
