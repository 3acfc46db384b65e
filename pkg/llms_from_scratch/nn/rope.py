"""Rotary position embeddings (RoPE) with the scalings long-context checkpoints use.

RoPE rotates each pair of query/key features by an angle ``position * inv_freq[i]``; the dot product of a
rotated query and key then depends only on their distance. Two memory layouts of "a pair" exist:

* split-half (``interleaved=False``, Hugging Face / NeoX): feature ``i`` pairs with ``i + head_dim/2``;
* interleaved (Meta's original Llama code, DeepSeek): feature ``2i`` pairs with ``2i + 1``.

Scalings change ``inv_freq`` once, statically, so they apply even to short inputs:

* ``linear``: every frequency is divided by ``factor`` (positions interpolated; Gemma 3's global layers);
* ``llama3``: long wavelengths are divided by ``factor``, short ones kept, the band between interpolated;
* ``yarn``: a linear ramp between interpolated and extrapolated frequencies, plus an attention factor that
  multiplies cos and sin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class RopeScaling:
    """How a checkpoint stretches RoPE past its pre-training length (``rope_type`` "linear", "llama3" or "yarn")."""

    rope_type: str
    factor: float
    original_context_length: int = 0  # llama3 and yarn; linear scaling does not use it
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    beta_fast: float = 32.0  # yarn
    beta_slow: float = 1.0  # yarn
    attention_factor: float | None = None  # yarn; None derives it from the factor
    # yarn: round the ramp's ends to whole features (the paper's form); gpt-oss keeps them fractional
    truncate: bool = True

    def __post_init__(self) -> None:
        if self.rope_type not in ("linear", "llama3", "yarn"):
            raise ValueError(f"unknown rope scaling {self.rope_type!r}; supported: 'linear', 'llama3', 'yarn'")
        if self.factor <= 0:
            raise ValueError(f"rope scaling needs a positive factor, got {self.factor}")
        if self.rope_type != "linear" and self.original_context_length <= 0:
            raise ValueError(f"{self.rope_type} rope scaling needs a positive original_context_length")


def rope_inv_freq(head_dim: int, rope_base: float, scaling: RopeScaling | None = None) -> tuple[torch.Tensor, float]:
    """Return the ``head_dim // 2`` inverse frequencies (float32, CPU) and the factor applied to cos/sin."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    # explicit device: the model may be built under torch.device("meta"), but these numbers must be real
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device="cpu").float() / head_dim
    inv_freq = 1.0 / (rope_base**exponents)
    if scaling is None:
        return inv_freq, 1.0
    if scaling.rope_type == "linear":
        return inv_freq / scaling.factor, 1.0
    if scaling.rope_type == "llama3":
        return _llama3(inv_freq, scaling), 1.0
    return _yarn(head_dim, rope_base, scaling)


def _llama3(inv_freq: torch.Tensor, s: RopeScaling) -> torch.Tensor:
    wavelen = 2 * math.pi / inv_freq
    low_freq_wavelen = s.original_context_length / s.low_freq_factor
    high_freq_wavelen = s.original_context_length / s.high_freq_factor
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq)
    # between the two wavelengths, blend the scaled and the original frequency
    smooth = (s.original_context_length / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    blended = (1 - smooth) * scaled / s.factor + smooth * scaled
    is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(is_medium, blended, scaled)


def _yarn(head_dim: int, base: float, s: RopeScaling) -> tuple[torch.Tensor, float]:
    def correction_dim(n_rotations: float) -> float:
        # the feature index whose wavelength fits n_rotations times into the original context
        return head_dim * math.log(s.original_context_length / (n_rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(s.beta_fast), correction_dim(s.beta_slow)
    if s.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32, device="cpu") - low) / (high - low)).clamp(0, 1)
    pos_freqs = base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device="cpu") / head_dim)
    extrapolate = 1 - ramp  # 1 for high-frequency features (kept), 0 for low-frequency ones (interpolated)
    inv_freq = (1.0 / (s.factor * pos_freqs)) * (1 - extrapolate) + (1.0 / pos_freqs) * extrapolate
    attention_factor = s.attention_factor
    if attention_factor is None:
        attention_factor = 0.1 * math.log(s.factor) + 1.0 if s.factor > 1 else 1.0
    return inv_freq, attention_factor


class RotaryEmbedding(nn.Module):
    """Computes cos/sin for arbitrary (per-row) positions; holds only the inverse frequencies."""

    def __init__(self, head_dim: int, rope_base: float, scaling: RopeScaling | None = None) -> None:
        super().__init__()
        inv_freq, self.attention_factor = rope_inv_freq(head_dim, rope_base, scaling)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``positions`` (batch, tokens) -> cos, sin of shape (batch, 1, tokens, head_dim), in ``dtype``."""
        # angles in float32 whatever the model dtype: bf16 positions lose whole units beyond 256
        angles = positions.float()[..., None] * self.inv_freq.float()  # (batch, tokens, head_dim/2)
        angles = torch.cat((angles, angles), dim=-1)  # (batch, tokens, head_dim)
        cos = (angles.cos() * self.attention_factor).to(dtype)
        sin = (angles.sin() * self.attention_factor).to(dtype)
        return cos[:, None], sin[:, None]  # broadcast over heads


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, interleaved: bool = False) -> torch.Tensor:
    """Rotate ``x`` (batch, heads, tokens, head_dim) by the angles in ``cos``/``sin``.

    ``cos``/``sin`` narrower than ``head_dim`` (partial RoPE, e.g. Qwen3-Next's quarter of each head) rotate the
    leading features only; the rest pass through and carry no position information.
    """
    rot_dim = cos.shape[-1]
    if rot_dim < x.shape[-1]:
        return torch.cat((apply_rope(x[..., :rot_dim], cos, sin, interleaved=interleaved), x[..., rot_dim:]), dim=-1)
    if interleaved:
        # (x0, x1), (x2, x3), ... -> gather evens and odds so the split-half formula applies, then restore
        x = torch.stack((x[..., 0::2], x[..., 1::2]), dim=-2).flatten(-2)  # (..., head_dim): [evens | odds]
        out = apply_rope(x, cos, sin)
        half = out.shape[-1] // 2
        return torch.stack((out[..., :half], out[..., half:]), dim=-1).flatten(-2)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin
