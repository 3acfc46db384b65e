"""Appendix E: parameter-efficient fine-tuning with LoRA (low-rank adaptation).

A frozen linear layer ``W`` gets a trainable low-rank update: ``y = x W^T + alpha * x A B``, with ``A`` of shape
``(in_dim, rank)`` and ``B`` of shape ``(rank, out_dim)``. ``B`` starts at zero, so a freshly wrapped model computes
exactly what the original did; training then moves only ``A`` and ``B`` (a few percent of the parameters).

Beyond the book: :func:`merge_lora` folds ``alpha * A B`` into ``W`` so inference costs nothing extra,
:func:`unmerge_lora` takes it out again, and :func:`save_lora_adapters` / :func:`load_lora_adapters` store
only the adapter weights (megabytes instead of the whole model) as safetensors.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn

from .files import atomic_path


class LoRALayer(nn.Module):
    """The low-rank update ``alpha * (x @ A @ B)``; ``B`` is zero at first, so the update starts at zero."""

    def __init__(self, in_dim: int, out_dim: int, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be at least 1, got {rank}")
        self.A = nn.Parameter(torch.empty(in_dim, rank))
        # the same initialisation nn.Linear gives its weights, so x @ A has a sensible scale from the start
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(rank, out_dim))
        self.rank = rank
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * (x @ self.A @ self.B)

    def delta_weight(self) -> torch.Tensor:
        """The update in ``nn.Linear``'s weight layout ``(out_dim, in_dim)``."""
        return self.alpha * (self.A @ self.B).T


class LinearWithLoRA(nn.Module):
    """An ``nn.Linear`` plus a :class:`LoRALayer` added to its output."""

    def __init__(self, linear: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha)
        self.lora.to(device=linear.weight.device, dtype=linear.weight.dtype)
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:  # the update already lives inside linear.weight
            return self.linear(x)
        return self.linear(x) + self.lora(x)

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update to the base weight: one matrix multiplication per call afterwards."""
        if not self.merged:
            self.linear.weight += self.lora.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again (equal to the original weight up to float rounding)."""
        if self.merged:
            self.linear.weight -= self.lora.delta_weight()
            self.merged = False


def replace_linear_with_lora(model: nn.Module, rank: int, alpha: float) -> nn.Module:
    """Wrap every ``nn.Linear`` inside ``model`` (recursively) in :class:`LinearWithLoRA`; returns ``model``.

    Freeze the model first (``requires_grad_(False)``) so that only the new ``A`` and ``B`` matrices train.
    """
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            setattr(model, name, LinearWithLoRA(module, rank, alpha))
        elif not isinstance(module, LinearWithLoRA):
            replace_linear_with_lora(module, rank, alpha)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _lora_modules(model: nn.Module) -> list[LinearWithLoRA]:
    found = [m for m in model.modules() if isinstance(m, LinearWithLoRA)]
    if not found:
        raise ValueError("the model has no LoRA layers; call replace_linear_with_lora(model, rank, alpha) first")
    return found


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight (faster inference; the adapters stay for unmerging)."""
    for module in _lora_modules(model):
        module.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo :func:`merge_lora`, so training or adapter swapping can continue."""
    for module in _lora_modules(model):
        module.unmerge()
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors (``...lora.A`` and ``...lora.B``), keyed as in ``model.state_dict()``."""
    _lora_modules(model)
    return {k: v for k, v in model.state_dict().items() if k.endswith((".lora.A", ".lora.B"))}


def save_lora_adapters(model: nn.Module, path: str | Path) -> Path:
    """Write the adapter tensors to a safetensors file (atomically); the rank and alpha go into its metadata."""
    from safetensors.torch import save_file

    modules = _lora_modules(model)
    state = {k: v.detach().contiguous().cpu() for k, v in lora_state_dict(model).items()}
    metadata = {"rank": str(modules[0].lora.rank), "alpha": str(modules[0].lora.alpha)}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def load_lora_adapters(model: nn.Module, path: str | Path) -> nn.Module:
    """Load adapters saved by :func:`save_lora_adapters` into a model wrapped with the same rank.

    Every adapter of the model must be in the file and vice versa, with matching shapes; merged layers are
    unmerged first so the new adapters never mix with old ones inside the base weights.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    modules = _lora_modules(model)
    with safe_open(str(path), framework="pt") as f:
        saved_alpha = (f.metadata() or {}).get("alpha")
    if saved_alpha is not None and float(saved_alpha) != float(modules[0].lora.alpha):
        raise ValueError(f"{path} was trained with alpha={saved_alpha}, the model's LoRA layers use "
                         f"alpha={modules[0].lora.alpha}; wrap the model with the same alpha")
    for module in modules:
        module.unmerge()
    expected = lora_state_dict(model)
    loaded = load_file(str(path))
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit this model's LoRA layers: missing {missing[:4]}, unexpected {unexpected[:4]}; "
            f"wrap the same architecture with replace_linear_with_lora before loading"
        )
    for key, tensor in loaded.items():
        if tensor.shape != expected[key].shape:
            raise ValueError(
                f"{path}: {key} has shape {tuple(tensor.shape)}, the model expects {tuple(expected[key].shape)}; "
                f"was the adapter trained with a different rank?"
            )
    model.load_state_dict(loaded, strict=False)
    return model
