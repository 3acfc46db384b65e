"""Next-byte entropies from a byte-level language model, the signal behind entropy patching.

``H[t]`` is the entropy (in nats) of the model's distribution for byte ``t`` given the bytes before it. The
model's context is reset at every newline, as in the BLT paper: each line is read on its own, starting from the
newline that ends the previous line, so the entropy of a byte never depends on text more than one line back and a
stream can be scored line by line in any order. Lines longer than the model's context are cut into pieces, each
read on its own.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .patching import NEWLINE


def _segments(data: torch.Tensor, reset_byte: int | None, max_len: int) -> list[tuple[int, int]]:
    """(start, stop) of the model inputs: each starts at byte 0 or at a reset byte and predicts bytes
    start + 1 .. stop; together they predict every byte but the first, each once."""
    n = len(data)
    cuts = [0]
    if reset_byte is not None:
        # a newline at position p is predicted at the end of its own line and read again as the first input of
        # the next line, which predicts bytes p + 1, p + 2, ...
        cuts = sorted({0, *torch.nonzero(data[:-1] == reset_byte).flatten().tolist()})
    cuts.append(n - 1)
    out = []
    for start, end in zip(cuts[:-1], cuts[1:]):
        for s in range(start, end, max_len):  # the input runs from s to stop - 1 and predicts s + 1 .. stop
            out.append((s, min(s + max_len, end)))
    return out


@torch.no_grad()
def next_byte_entropies(
    model: nn.Module,
    data: torch.Tensor,
    context_length: int,
    reset_byte: int | None = NEWLINE,
    batch_size: int = 64,
) -> torch.Tensor:
    """Entropy in nats of ``model``'s prediction for every byte of the 1-D stream ``data`` (float, same length).

    ``model`` maps (batch, T) byte ids to (batch, T, vocab) next-byte logits. The first byte has no context; it
    gets the largest possible entropy, ``log(256)``.
    """
    if data.ndim != 1:
        raise ValueError(f"data must be a 1-D stream of byte ids, got shape {tuple(data.shape)}")
    device = next(model.parameters()).device
    out = torch.full((len(data),), math.log(256.0))
    segments = _segments(data, reset_byte, context_length)
    # similar lengths in one batch waste little padding; padding on the right cannot reach earlier positions
    segments.sort(key=lambda seg: seg[1] - seg[0])
    was_training = model.training
    model.eval()
    for first in range(0, len(segments), batch_size):
        batch = segments[first : first + batch_size]
        width = max(stop - start for start, stop in batch)
        x = torch.zeros(len(batch), width, dtype=torch.long)
        for row, (start, stop) in enumerate(batch):
            x[row, : stop - start] = data[start:stop]
        logp = torch.log_softmax(model(x.to(device)).float(), dim=-1)  # (batch, width, vocab)
        ent = -(logp.exp() * logp).sum(-1).cpu()  # (batch, width)
        for row, (start, stop) in enumerate(batch):
            out[start + 1 : stop + 1] = ent[row, : stop - start]
    model.train(was_training)
    return out
