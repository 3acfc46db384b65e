"""Training loop for :class:`ConceptModel` with either objective."""

from __future__ import annotations

import torch

from .losses import info_nce_loss, masked_mse_loss
from .model import ConceptModel, pad_reviews

OBJECTIVES = ("mse", "infonce")


def concept_loss(model: ConceptModel, emb: torch.Tensor, mask: torch.Tensor, objective: str) -> torch.Tensor:
    """The loss of one padded batch under ``objective`` ("mse" or "infonce")."""
    pred = model(emb)
    if objective == "mse":
        return masked_mse_loss(pred, emb, mask)
    if objective == "infonce":
        return info_nce_loss(pred, emb, mask)
    raise ValueError(f"unknown objective {objective!r}; use one of {OBJECTIVES}")


def train_concept_model(
    model: ConceptModel,
    reviews: list[torch.Tensor],
    *,
    objective: str,
    epochs: int = 1,
    batch_size: int = 16,
    lr: float = 3e-4,
    weight_decay: float = 0.1,
    seed: int = 123,
    max_steps: int | None = None,
) -> list[float]:
    """Train on reviews given as (n_i, sentence_dim) tensors with AdamW; returns the loss of every step.

    Reviews are shuffled each epoch with a seeded generator and truncated to the model's context length.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; use one of {OBJECTIVES}")
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(reviews), generator=gen).tolist()
        for start in range(0, len(order), batch_size):
            batch = [reviews[i] for i in order[start : start + batch_size]]
            emb, mask = pad_reviews(batch, model.cfg.context_length)
            loss = concept_loss(model, emb.to(device), mask.to(device), objective)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if max_steps is not None and len(losses) >= max_steps:
                model.eval()
                return losses
    model.eval()
    return losses
