"""Saving and loading models and training state safely.

* Writes are atomic: the file is written beside its target and renamed into place, so an interrupted save
  never leaves a truncated checkpoint where a good one was.
* Reads use ``torch.load(..., weights_only=True)``: a checkpoint can hold tensors, numbers, strings, lists and
  dicts, but never code that runs when it is opened.
* State dicts are saved from the plain model. ``torch.compile`` wraps a model and prefixes its keys with
  ``_orig_mod.``, ``DistributedDataParallel`` with ``module.``; :func:`load_model_state_dict` strips both, so a
  state dict written from a compiled or distributed model still loads into a plain one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..files import atomic_path

# wrappers that keep the real model as an attribute and prefix its state-dict keys with the attribute's name
_WRAPPER_PREFIXES = ("_orig_mod.", "module.")


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the plain model inside ``torch.compile`` and ``DistributedDataParallel`` wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def strip_wrapper_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Remove leading ``_orig_mod.`` / ``module.`` from every key (in any order and number)."""
    cleaned: dict[str, Any] = {}
    for key, value in state_dict.items():
        name = key
        while name.startswith(_WRAPPER_PREFIXES):
            for prefix in _WRAPPER_PREFIXES:
                name = name.removeprefix(prefix)
        cleaned[name] = value
    return cleaned


def load_model_state_dict(model: nn.Module, state_dict: Mapping[str, Any], strict: bool = True):
    """``model.load_state_dict`` that accepts keys saved from compiled or DDP-wrapped models."""
    return unwrap_model(model).load_state_dict(strip_wrapper_prefixes(state_dict), strict=strict)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` into a temporary file beside ``path``, then rename it over ``path`` in one step."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    **extra: Any) -> Path:
    """Save the model's (unwrapped) state dict, the optimizer's state and any ``extra`` entries atomically.

    ``extra`` values must be what ``weights_only`` loading accepts: tensors, numbers, strings, lists, dicts.
    """
    checkpoint: dict[str, Any] = {"model": unwrap_model(model).state_dict()}
    if optimizer is not None:
        checkpoint["optimizer"] = optimizer.state_dict()
    reserved = {"model", "optimizer"} & extra.keys()
    if reserved:
        raise ValueError(f"extra entries may not be named {sorted(reserved)}: those hold the model and optimizer")
    checkpoint.update(extra)
    return atomic_torch_save(checkpoint, path)


def load_checkpoint(path: str | Path, model: nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a :func:`save_checkpoint` file (``weights_only=True``), restore model and optimizer, return all of it.

    A file holding a bare state dict (the book's ``torch.save(model.state_dict(), ...)``) loads too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if "model" not in checkpoint:  # a bare state dict
        checkpoint = {"model": checkpoint}
    if model is not None:
        load_model_state_dict(model, checkpoint["model"])
    if optimizer is not None:
        if "optimizer" not in checkpoint:
            raise KeyError(f"{path} holds no optimizer state; it was saved without an optimizer")
        optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint
