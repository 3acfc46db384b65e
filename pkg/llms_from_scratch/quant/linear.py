"""A linear layer whose weight stays quantized in memory: integer codes plus per-group scales.

``forward`` computes ``x @ W^T + b`` with ``W`` the dequantized weight. The plain path does exactly that
(dequantize, then ``F.linear``) and is always available and always correct; it is what training through the
layer (gradients for ``x``) and any input that no kernel was measured for take. A faster kernel from PyTorch
(:mod:`.kernels`) is used only after :func:`~.kernels.choose_kernels` found that it agrees with the plain path on
this layer and beats it on this machine, and only for the number of input rows and the dtype it was measured with.
With ``compute_dtype`` set (by ``choose_kernels(..., activations=...)``), the product runs on the input cast to that
dtype (bfloat16, for which PyTorch's kernels may have a faster code path) and its output is cast back, as
autocast does. Kernels that quantize the activations too (W8A8, :mod:`.kernels`) are chosen only where that was
allowed, and then compute other numbers than the plain path, within their own tolerance.

The codes and scales are buffers, not parameters: they are saved in the state dict and moved by ``.to(device)``,
and an optimizer never sees them. ``.to(dtype)`` casts the scales too (the codes stay integers); a kernel measured
for another dtype is then bypassed for the plain path until ``choose_kernels`` runs again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import KERNELS, PLAIN
from .schemes import quantize_weight
from .weight import QuantizedWeight, dequantize


class QuantizedLinear(nn.Module):
    """``nn.Linear``'s computation with a :class:`~.weight.QuantizedWeight` (rows = out_features)."""

    def __init__(self, weight: QuantizedWeight, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.bits, self.group_size, self.scheme = weight.bits, weight.group_size, weight.scheme
        self.register_buffer("codes", weight.codes)
        self.register_buffer("scales", weight.scales)
        zeros_tensor = isinstance(weight.zeros, torch.Tensor)
        self.register_buffer("zeros", weight.zeros if zeros_tensor else None)
        self.zero_point = None if zeros_tensor else int(weight.zeros)
        self.register_buffer("minimums", weight.minimums)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        # the kernel chosen by kernels.choose_kernels, the input rows and dtype it was measured for, its own
        # layout of the weight (derived from the codes, so not saved) and how far it was from the plain path
        self.kernel = PLAIN
        self.kernel_rows = 0
        self.kernel_dtype: torch.dtype | None = None
        self.kernel_error = 0.0
        # None: the product runs in the input's dtype; a dtype (bfloat16): the input is cast to it for the product
        # and the output cast back, as autocast does (choose_kernels sets it where that was allowed and faster)
        self.compute_dtype: torch.dtype | None = None
        self.register_buffer("kernel_weight", None, persistent=False)
        self.register_buffer("kernel_scales", None, persistent=False)
        self.kernel_packed: object | None = None  # a kernel's weight packed as an op's own object (not a tensor)

    @classmethod
    def from_linear(cls, linear: nn.Linear, scheme: str, group_size: int | None = None,
                    symmetric: bool | None = None) -> QuantizedLinear:
        """Quantize ``linear``'s weight by round-to-nearest with the named scheme (see ``quantize_weight``)."""
        return cls(quantize_weight(linear.weight, scheme, group_size, symmetric), linear.bias)

    def quantized_weight(self) -> QuantizedWeight:
        zeros = self.zeros if self.zeros is not None else self.zero_point
        return QuantizedWeight(self.codes, self.scales, self.bits, self.group_size, zeros, self.minimums, self.scheme)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight as a float matrix (out_features, in_features)."""
        return dequantize(self.quantized_weight(), dtype)

    def plain_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dequantize the weight and multiply: the reference every kernel is checked against."""
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantize(x.dtype), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compute_dtype is not None and x.dtype != self.compute_dtype:
            return self.product(x.to(self.compute_dtype)).to(x.dtype)
        return self.product(x)

    def product(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W^T + b`` in ``x``'s dtype: the chosen kernel where it was measured for this input, else plain."""
        if (self.kernel == PLAIN or x.dtype != self.kernel_dtype or x.numel() != self.kernel_rows * self.in_features
                or (torch.is_grad_enabled() and x.requires_grad)
                or (self.kernel_packed is not None and x.device.type != "cpu")):  # a packed object stays put
            return self.plain_forward(x)
        # (..., in_features) -> (kernel_rows, in_features) -> (kernel_rows, out_features) -> (..., out_features)
        y = KERNELS[self.kernel].run(self, x.reshape(self.kernel_rows, self.in_features), *self.kernel_operands())
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.view(*x.shape[:-1], self.out_features)

    def kernel_operands(self) -> tuple[object, torch.Tensor | None]:
        """The chosen kernel's weight (its own layout or packed object) and scales."""
        return self.kernel_weight if self.kernel_packed is None else self.kernel_packed, self.kernel_scales

    def extra_repr(self) -> str:
        computed = "" if self.compute_dtype is None else f", compute_dtype={str(self.compute_dtype)[6:]}"
        return (f"in_features={self.in_features}, out_features={self.out_features}, scheme={self.scheme}, "
                f"bits={self.bits}, group_size={self.group_size}, bias={self.bias is not None}, kernel={self.kernel}"
                f"{computed}")
