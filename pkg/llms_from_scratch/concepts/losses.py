"""The two training objectives. Both compare the prediction made at position t with sentence t + 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _shifted(pred: torch.Tensor, emb: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and their targets at the positions whose next sentence is real: (N, dim) each."""
    valid = mask[:, 1:]  # the prediction at t is usable when sentence t + 1 exists
    return pred[:, :-1][valid], emb[:, 1:][valid]


def masked_mse_loss(pred: torch.Tensor, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error between predicted and true next-sentence embeddings, padding excluded."""
    p, target = _shifted(pred, emb, mask)
    return F.mse_loss(p, target)


def info_nce_loss(
    pred: torch.Tensor, emb: torch.Tensor, mask: torch.Tensor, temperature: float = 0.05
) -> torch.Tensor:
    """InfoNCE: each prediction must pick its own next sentence among all next sentences in the batch.

    The other targets in the batch (other reviews, and other positions of the same review) are the negatives.
    Only the prediction's direction matters, so it is scaled to unit length before the dot products.
    """
    p, target = _shifted(pred, emb, mask)
    logits = F.normalize(p, dim=-1) @ target.T / temperature  # (N, N); the diagonal holds the true pairs
    return F.cross_entropy(logits, torch.arange(len(p), device=p.device))
