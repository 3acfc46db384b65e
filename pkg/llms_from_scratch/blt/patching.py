"""Cutting a byte stream into patches: where the next byte is hard to guess, or every ``size`` bytes.

A patching is a bool vector ``starts`` over the bytes: ``starts[t]`` is True when byte ``t`` opens a new patch.

- **Entropy patches** (BLT, Pagnoni et al. 2024): a small byte model gives the entropy of its next-byte
  distribution, ``H[t] = H(p(x_t | x_<t))``; byte ``t`` opens a patch when ``H[t] > threshold``, so patches end
  where the text becomes unpredictable (usually at the start of a word) and long predictable stretches share one
  patch. A byte that follows a newline always opens a patch (the entropy model's context is reset there too).
- **Fixed patches**: every ``size`` bytes, whatever the text says.

Both decisions for byte ``t`` use only bytes before ``t``, which is what lets a model predict byte ``t`` knowing
whether it opens a patch without seeing it.
"""

from __future__ import annotations

import torch

NEWLINE = ord("\n")


def entropy_patch_starts(
    entropies: torch.Tensor, data: torch.Tensor, threshold: float, reset_byte: int | None = NEWLINE
) -> torch.Tensor:
    """Bool (n,): byte 0, every byte whose entropy exceeds ``threshold`` and every byte after ``reset_byte``."""
    if entropies.shape != data.shape or entropies.ndim != 1:
        raise ValueError(f"entropies {tuple(entropies.shape)} and data {tuple(data.shape)} must be 1-D and of the "
                         "same length (one entropy per byte)")
    starts = entropies > threshold
    if reset_byte is not None:
        starts[1:] |= data[:-1] == reset_byte
    if len(starts):
        starts[0] = True
    return starts


def fixed_patch_starts(n: int, size: int) -> torch.Tensor:
    """Bool (n,): a patch opens at bytes 0, size, 2 * size, ..."""
    if size < 1:
        raise ValueError(f"patch size must be at least 1, got {size}")
    return torch.arange(n) % size == 0


def tune_threshold(
    entropies: torch.Tensor, data: torch.Tensor, target_mean: float, reset_byte: int | None = NEWLINE
) -> float:
    """The entropy threshold whose patches have a mean length of ``target_mean`` bytes over ``data``.

    No search is needed: the patches are the forced ones (byte 0, bytes after a newline) plus one per byte above
    the threshold, so the threshold that makes ``round(n / target_mean)`` patches lies between two neighbouring
    values of the sorted free entropies; we take their midpoint.
    """
    n = len(data)
    forced = entropy_patch_starts(torch.zeros_like(entropies), data, 0.0, reset_byte)
    free = entropies[~forced].sort(descending=True).values
    wanted = round(n / target_mean) - int(forced.sum())
    if wanted < 0:
        raise ValueError(f"newlines alone make patches of {n / int(forced.sum()):.2f} bytes on average, shorter "
                         f"than target_mean={target_mean}; choose a smaller target or reset_byte=None")
    if wanted >= len(free):
        return float(free[-1]) - 1.0 if len(free) else 0.0  # every byte opens a patch
    if wanted == 0:
        return float(free[0])
    return float(free[wanted - 1] + free[wanted]) / 2


def patch_ids(starts: torch.Tensor) -> torch.Tensor:
    """Patch index of every byte (..., n): 0 for the first patch, counting the starts; the first byte always
    opens a patch, whatever ``starts`` says there (a window cut from a stream begins with a fresh patch)."""
    starts = starts.clone()
    starts[..., 0] = True
    return starts.long().cumsum(-1) - 1


def patch_lengths(starts: torch.Tensor) -> torch.Tensor:
    """Length in bytes of each patch of a 1-D patching."""
    ids = patch_ids(starts)
    return torch.bincount(ids)
