"""Choosing where tensors live: CUDA, then Apple's MPS, then the CPU, and a dtype the device handles well."""

from __future__ import annotations

import torch


def pick_device(verbose: bool = True) -> tuple[torch.device, torch.dtype]:
    """Return ``(device, dtype)``: the fastest available device and bf16 only where it is supported.

    bf16 halves memory and speeds up matrix work on GPUs that have it (Ampere and newer); everywhere else
    float32 stays the safe default, so results match the book's numbers.
    """
    device, dtype, why = _choose()
    if verbose:
        print(_describe(device, dtype, why))
    return device, dtype


def describe_device() -> str:
    """One line naming the device and dtype :func:`pick_device` would choose, and why."""
    return _describe(*_choose())


def _describe(device: torch.device, dtype: torch.dtype, why: str) -> str:
    return f"Device: {device.type}, dtype: {str(dtype).removeprefix('torch.')} ({why})"


def _choose() -> tuple[torch.device, torch.dtype, str]:
    if torch.cuda.is_available():
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported():
            dtype, why = torch.bfloat16, f"CUDA GPU found ({name}); it supports bfloat16"
        else:
            dtype, why = torch.float32, f"CUDA GPU found ({name}); it lacks bfloat16, so float32"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device, dtype = torch.device("mps"), torch.float32
        why = "Apple GPU (MPS) found; float32 because bfloat16 support differs across macOS versions"
    else:
        device, dtype = torch.device("cpu"), torch.float32
        why = "no CUDA or MPS GPU found, so the CPU with float32"
    return device, dtype, why
