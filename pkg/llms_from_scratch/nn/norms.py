"""Normalization layers: LayerNorm (GPT-2, BERT) and RMSNorm (Llama, Qwen3 and most newer decoders)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_FUSED_RMS_NORM = hasattr(F, "rms_norm")  # torch >= 2.4


class LayerNorm(nn.Module):
    """Layer normalization with the book's parameter names ``scale`` and ``shift``.

    GPT-2 uses ``eps=1e-5``, BERT ``eps=1e-12``; the eps is a constructor argument, never a hidden default
    that a family has to override after the fact.
    """

    def __init__(self, emb_dim: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class RMSNorm(nn.Module):
    """Root-mean-square normalization: ``x / sqrt(mean(x^2) + eps) * scale``.

    ``upcast=True`` computes the statistic in float32 and casts back *before* multiplying by ``scale``,
    which is what Llama/Qwen reference code does; in bf16 the order changes the result.
    ``unit_offset=True`` multiplies by ``1 + scale`` instead (Gemma stores its weights that way), and, as
    Gemma's reference code does, multiplies in float32 before casting back.
    """

    def __init__(self, emb_dim: int, eps: float = 1e-6, *, upcast: bool = True, unit_offset: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.upcast = upcast
        self.unit_offset = unit_offset
        self.scale = nn.Parameter(torch.zeros(emb_dim) if unit_offset else torch.ones(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _FUSED_RMS_NORM and x.dtype == torch.float32 and self.scale.dtype == torch.float32 and not self.unit_offset:
            # in float32 the upcast is a no-op, so one fused kernel computes the same formula (decoding runs
            # two norms per layer per token, and the separate element-wise steps cost more than the arithmetic)
            return F.rms_norm(x, self.scale.shape, self.scale, self.eps)
        in_dtype = x.dtype
        h = x.float() if self.upcast else x
        h = h * torch.rsqrt(h.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        if self.unit_offset:
            return (h * (1.0 + self.scale.to(h.dtype))).to(in_dtype)
        return self.scale * h.to(in_dtype)
