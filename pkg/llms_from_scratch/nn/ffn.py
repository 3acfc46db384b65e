"""Position-wise feed-forward blocks: the GELU MLP of GPT-2/BERT and the gated SwiGLU of Llama/Qwen (GeGLU,
Gemma's variant, is the same gate with a tanh-approximated GELU in place of SiLU)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS = {
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
    "gelu": F.gelu,  # exact erf form (BERT)
    "relu": F.relu,
    "silu": F.silu,
}


class FeedForward(nn.Module):
    """``fc2(act(fc1(x)))``: expand to ``hidden_dim``, apply the activation, project back."""

    def __init__(self, emb_dim: int, hidden_dim: int, activation: str = "gelu_tanh", bias: bool = True) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
        self.activation = activation
        self.fc1 = nn.Linear(emb_dim, hidden_dim, bias=bias)
        self.fc2 = nn.Linear(hidden_dim, emb_dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(_ACTIVATIONS[self.activation](self.fc1(x)))


class SwiGLU(nn.Module):
    """Gated feed-forward: ``fc3(silu(fc1(x)) * fc2(x))`` (fc1 = gate, fc2 = up, fc3 = down projection).

    ``activation="gelu_tanh"`` gates with GELU instead of SiLU: GeGLU (Gemma).

    ``clamp_limit`` selects gpt-oss's clamped form: the gate is capped at ``+limit`` and the linear part
    clipped to ``[-limit, limit]`` (so no expert can emit an outsized activation), the gate's SiLU is sharpened
    to ``g * sigmoid(alpha * g)``, and the linear part is shifted by one: ``fc3((up + 1) * g * sigmoid(alpha * g))``.
    """

    def __init__(self, emb_dim: int, hidden_dim: int, bias: bool = False, activation: str = "silu",
                 clamp_limit: float | None = None, alpha: float = 1.0) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
        if clamp_limit is not None and (activation != "silu" or clamp_limit <= 0):
            raise ValueError(f"clamp_limit needs activation='silu' and a positive limit, got {activation!r}, "
                             f"{clamp_limit}")
        self.activation = activation
        self.clamp_limit = clamp_limit
        self.alpha = alpha
        self.fc1 = nn.Linear(emb_dim, hidden_dim, bias=bias)
        self.fc2 = nn.Linear(emb_dim, hidden_dim, bias=bias)
        self.fc3 = nn.Linear(hidden_dim, emb_dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.clamp_limit is not None:
            g = self.fc1(x).clamp(max=self.clamp_limit)
            up = self.fc2(x).clamp(min=-self.clamp_limit, max=self.clamp_limit)
            return self.fc3((up + 1) * (g * torch.sigmoid(g * self.alpha)))
        gate = F.silu(self.fc1(x)) if self.activation == "silu" else _ACTIVATIONS[self.activation](self.fc1(x))
        return self.fc3(gate * self.fc2(x))
