"""Loss normalised by the global number of target tokens, so accumulated micro-batches equal one large batch.

The mean loss of a large batch is ``sum of token losses / number of target tokens``. Averaging the mean losses
of its micro-batches gives the same only when every micro-batch has the same number of targets; with padding
(``ignore_index``) or ragged lengths, a short micro-batch counts as much as a long one. Weighting each
micro-batch's mean by its share of the global target count is exact in every case. Data-parallel training
(DDP, FSDP) averages gradients over the ranks, so each rank multiplies by ``world_size`` to undo that division.
"""

from __future__ import annotations

import torch

__all__ = ["count_targets", "micro_batch_loss"]


def count_targets(targets: torch.Tensor, ignore_index: int = -100) -> int:
    """How many positions of ``targets`` count in the loss (all but ``ignore_index``)."""
    return int((targets != ignore_index).sum())


def micro_batch_loss(mean_loss: torch.Tensor, n_targets: int, global_targets: int,
                     world_size: int = 1) -> torch.Tensor:
    """The part of the global mean loss that one micro-batch contributes, ready for ``backward()``.

    ``mean_loss`` is the micro-batch's mean over its ``n_targets`` counted targets; ``global_targets`` counts the
    targets of every micro-batch of the optimizer step on every rank. Summing the gradients of these losses over
    the micro-batches, then averaging them over the ranks, gives the gradient of the full batch's mean loss.
    """
    if global_targets < 1:
        raise ValueError(f"an optimizer step needs at least one target token, got {global_targets}")
    return mean_loss * (n_targets * world_size / global_targets)
