"""Padding helpers shared by the alignment recipes: pad a batch on either side, find each row's last real token,
move left padding to the right, and build the masks a decoder needs.

Convention: a *mask* is a boolean ``(batch, tokens)`` tensor that is True on real tokens and False on padding.
The pad token's id never carries meaning here; only the mask says what is padding, because a pad id such as
``<|endoftext|>`` may also appear inside a real text.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..nn.attention import build_attention_mask

PADDING_SIDES = ("left", "right")


def _check_side(side: str) -> None:
    if side not in PADDING_SIDES:
        raise ValueError(f"padding side must be 'left' or 'right', got {side!r}")


def mask_from_lengths(lengths: torch.Tensor | Sequence[int], max_length: int | None = None,
                      side: str = "right") -> torch.Tensor:
    """Boolean ``(batch, max_length)`` mask with ``lengths[i]`` True entries, at the start (right padding) or at
    the end (left padding) of row ``i``."""
    _check_side(side)
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    if max_length is None:
        max_length = int(lengths.max()) if lengths.numel() else 0
    if lengths.numel() and int(lengths.max()) > max_length:
        raise ValueError(f"a sequence of {int(lengths.max())} tokens does not fit max_length={max_length}")
    positions = torch.arange(max_length, device=lengths.device)[None, :]  # (1, max_length)
    if side == "right":
        return positions < lengths[:, None]
    return positions >= (max_length - lengths)[:, None]


def pad_sequences(sequences: Sequence[Sequence[int]], pad_token_id: int, side: str = "right",
                  max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token-id lists into ``(ids, mask)``, both ``(batch, length)``; ``length`` is the longest sequence
    unless ``max_length`` is given (longer sequences raise rather than being cut silently)."""
    _check_side(side)
    if len(sequences) == 0:
        raise ValueError("pad_sequences got no sequences")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if int(lengths.min()) == 0:
        raise ValueError("pad_sequences got an empty sequence; every row needs at least one real token")
    mask = mask_from_lengths(lengths, max_length, side)
    ids = torch.full(mask.shape, pad_token_id, dtype=torch.long)
    ids[mask] = torch.tensor([t for s in sequences for t in s], dtype=torch.long)  # row-major fill of the True slots
    return ids, mask


def last_real_index(mask: torch.Tensor) -> torch.Tensor:
    """Index ``(batch,)`` of the last real token in each row, whatever the padding side."""
    mask = mask.bool()
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("a row of the mask has no real token; drop empty sequences before padding")
    positions = torch.arange(mask.shape[-1], device=mask.device).expand_as(mask)
    # padding slots get -1 so the maximum over the row is the last real slot
    return torch.where(mask, positions, torch.full_like(positions, -1)).amax(dim=-1)


def gather_last_real(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pick ``values[i, last_real_index(mask)[i]]`` for each row: ``(batch, tokens, ...)`` -> ``(batch, ...)``."""
    index = last_real_index(mask)
    return values[torch.arange(values.shape[0], device=values.device), index]


def to_right_padding(ids: torch.Tensor, mask: torch.Tensor, pad_token_id: int = 0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Move every row's real tokens to the front, keeping their order, and refill the rest with ``pad_token_id``.

    ``ids`` is ``(batch, tokens)`` or carries a vector per token, ``(batch, tokens, ...)`` (hidden states; the
    padding then becomes vectors filled with ``pad_token_id``, 0 by default). With right padding a causal model
    computes the real tokens exactly as it would without any padding (they never look ahead and their positions
    start at 0), so no attention mask is needed and neither the padding side nor the pad id can change a result.
    """
    mask = mask.bool()
    # a stable sort of "is padding" (0 before 1) puts the real tokens first in their original order
    order = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True)  # (batch, tokens)
    new_mask = torch.gather(mask, -1, order)
    extra = (1,) * (ids.dim() - 2)  # the per-token vector dimensions, if any
    moved = torch.gather(ids, 1, order.view(*order.shape, *extra).expand_as(ids))
    moved = moved.masked_fill(~new_mask.view(*new_mask.shape, *extra), pad_token_id)
    return moved, new_mask


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids ``(batch, tokens)`` that count real tokens only, so left padding does not shift them
    (padding slots get position 0; their outputs are ignored)."""
    return (mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def causal_attention_mask(mask: torch.Tensor) -> torch.Tensor:
    """Boolean ``(batch, 1, tokens, tokens)`` mask, True where a query may attend to a key: causal and only to
    real keys (each query also sees itself, so padding rows never become all-False and produce NaNs)."""
    return build_attention_mask(mask.shape[-1], mask.bool())
