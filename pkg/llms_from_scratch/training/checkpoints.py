"""Saving and loading models and training state safely.

* Writes are atomic: the file is written beside its target and renamed into place, so an interrupted save
  never leaves a truncated checkpoint where a good one was.
* Reads use ``torch.load(..., weights_only=True)``: a checkpoint can hold tensors, numbers, strings, lists and
  dicts, but never code that runs when it is opened.
* :func:`save_checkpoint` stores a SHA-256 checksum of everything it saves (every tensor's dtype, shape and bytes,
  every other value), and loading recomputes it: a file damaged on disk or in a copy is refused with an error
  naming it, instead of resuming into NaN weights.
* State dicts are saved from the plain model. ``torch.compile`` wraps a model and prefixes its keys with
  ``_orig_mod.``, ``DistributedDataParallel`` with ``module.``; :func:`load_model_state_dict` strips both, so a
  state dict written from a compiled or distributed model still loads into a plain one.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..files import atomic_path

CHECKSUM_KEY = "checksum"

# wrappers that keep the real model as an attribute and prefix its state-dict keys with the attribute's name
_WRAPPER_PREFIXES = ("_orig_mod.", "module.")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, damaged (its checksum does not match) or not checkable."""


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


def _hash_value(digest, value: Any) -> None:
    """Feed ``value`` to ``digest`` with its type and length, so different structures never hash alike."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"tensor {tensor.dtype} {tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the raw bytes, whatever the dtype
    elif isinstance(value, Mapping):
        digest.update(f"dict {len(value)};".encode())
        for key, item in value.items():  # in stored order: torch.load gives dicts back in the order they were saved
            _hash_value(digest, key)
            _hash_value(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)};".encode())
        for item in value:
            _hash_value(digest, item)
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        digest.update(f"str {len(data)};".encode())
        digest.update(data)
    else:  # numbers, booleans, None: repr is exact (floats round-trip through repr)
        digest.update(f"{type(value).__name__} {value!r};".encode())


def state_checksum(state: Mapping[str, Any]) -> str:
    """SHA-256 of a checkpoint's contents, leaving out its own ``checksum`` entry."""
    digest = hashlib.sha256()
    _hash_value(digest, {key: value for key, value in state.items() if key != CHECKSUM_KEY})
    return digest.hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    **extra: Any) -> Path:
    """Save the model's (unwrapped) state dict, the optimizer's state and any ``extra`` entries atomically.

    ``extra`` values must be what ``weights_only`` loading accepts: tensors, numbers, strings, lists, dicts. A
    ``checksum`` entry is added; :func:`read_checkpoint` verifies it.
    """
    optimizer_state = optimizer.state_dict() if optimizer is not None else None
    return save_checkpoint_state(path, unwrap_model(model).state_dict(), optimizer_state, **extra)


def save_checkpoint_state(path: str | Path, model_state: Mapping[str, Any],
                          optimizer_state: Mapping[str, Any] | None = None, **extra: Any) -> Path:
    """:func:`save_checkpoint` for states already taken from the model and the optimizer.

    For sharded training, where the full state dicts are first gathered to one process
    (``torch.distributed.checkpoint.state_dict.get_state_dict``) and that process writes them.
    """
    checkpoint: dict[str, Any] = {"model": model_state}
    if optimizer_state is not None:
        checkpoint["optimizer"] = optimizer_state
    reserved = {"model", "optimizer", CHECKSUM_KEY} & extra.keys()
    if reserved:
        raise ValueError(f"extra entries may not be named {sorted(reserved)}: those hold the model, the optimizer "
                         "and the checksum")
    checkpoint.update(extra)
    checkpoint[CHECKSUM_KEY] = state_checksum(checkpoint)
    return atomic_torch_save(checkpoint, path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    require_checksum: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``, with the checksum verified and removed from the result.

    A file without a checksum (a bare state dict, or a checkpoint written before they had one) loads as it is,
    unless ``require_checksum`` is set. Anything unreadable or damaged raises :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError) as exc:
        text = str(exc).strip()
        reason = text.splitlines()[0].split(". ")[0] if text else type(exc).__name__  # torch's first sentence
        raise CheckpointError(f"{path} cannot be read as a checkpoint ({reason}); it is damaged or was not written "
                              "by torch.save: use an intact copy or start again without it") from None
    return verify_checksum(checkpoint, path, require_checksum)


def verify_checksum(checkpoint: Any, path: str | Path, require_checksum: bool = False) -> Any:
    """Check the checksum :func:`save_checkpoint` stored in an already loaded ``checkpoint`` and remove it.

    For callers that had to ``torch.load`` the file themselves; ``path`` only names the file in the error.
    """
    if isinstance(checkpoint, dict) and CHECKSUM_KEY in checkpoint:
        expected = checkpoint.pop(CHECKSUM_KEY)
        if state_checksum(checkpoint) != expected:
            raise CheckpointError(f"{path} is damaged: its contents do not match the checksum saved with them; use "
                                  "an intact copy of the file or start again without it")
    elif require_checksum:
        raise CheckpointError(f"{path} has no checksum (it was written before checkpoints carried one), so it "
                              "cannot be checked; start a new run in another folder")
    return checkpoint


def load_checkpoint(path: str | Path, model: nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a :func:`save_checkpoint` file (``weights_only=True``, checksum verified), restore model and optimizer,
    return all of it.

    A file holding a bare state dict (the book's ``torch.save(model.state_dict(), ...)``) loads too.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path, map_location=map_location)
    if "model" not in checkpoint:  # a bare state dict
        checkpoint = {"model": checkpoint}
    if model is not None:
        load_model_state_dict(model, checkpoint["model"])
    if optimizer is not None:
        if "optimizer" not in checkpoint:
            raise KeyError(f"{path} holds no optimizer state; it was saved without an optimizer")
        optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint
