"""Decoding by retrieval, and the two baselines every concept model has to beat.

A prediction for the sentence after position ``t`` is scored against candidate sentences by dot product (the
stored embeddings have unit length, so this ranks them as cosine similarity does). It counts as a hit when the
true next sentence scores strictly higher than every one of the ``k`` sampled negatives; a tie is a miss.
"""

from __future__ import annotations

import torch


def copy_previous(emb: torch.Tensor) -> torch.Tensor:
    """Baseline: the prediction after position t is sentence t itself. (batch, T, dim) -> (batch, T, dim)."""
    return emb.clone()


def context_mean(emb: torch.Tensor) -> torch.Tensor:
    """Baseline: the prediction after position t is the mean of sentences 0..t. (batch, T, dim) -> same shape.

    Padding sits to the right of every real sentence, so it never enters the mean of a real position.
    """
    counts = torch.arange(1, emb.shape[1] + 1, dtype=emb.dtype, device=emb.device)  # (T,)
    return emb.cumsum(dim=1) / counts[None, :, None]


def next_sentence_items(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (review, position) that has a next sentence, for reviews of ``lengths`` sentences.

    Returns ``(review, position, target)``, each (N,): the prediction made at ``position`` of ``review`` is
    scored against sentence ``position + 1``, whose index in the flattened pool of all sentences is ``target``.
    """
    review, position, target = [], [], []
    offset = 0
    for r, n in enumerate(lengths):
        for t in range(n - 1):
            review.append(r)
            position.append(t)
            target.append(offset + t + 1)
        offset += n
    return torch.tensor(review), torch.tensor(position), torch.tensor(target)


def sample_candidates(targets: torch.Tensor, pool_size: int, k: int = 99, seed: int = 123) -> torch.Tensor:
    """``k`` distinct negatives per target, drawn uniformly from the pool without the target itself. (N,) -> (N, k).

    The same ``seed`` gives the same candidates, so every predictor is scored on identical lists.
    """
    if k > pool_size - 1:
        raise ValueError(f"cannot draw {k} negatives from a pool of {pool_size} sentences; use k <= {pool_size - 1}")
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for t in targets.tolist():
        draw = torch.randperm(pool_size - 1, generator=gen)[:k]
        rows.append(draw + (draw >= t).long())  # indices 0..pool-2, shifted past the target
    return torch.stack(rows) if rows else torch.empty(0, k, dtype=torch.long)


def retrieval_hits(
    predictions: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, pool: torch.Tensor
) -> torch.Tensor:
    """Whether each prediction (N, dim) ranks its target above all its negatives (N, k) in ``pool`` (P, dim)."""
    true_score = (predictions * pool[targets]).sum(-1)  # (N,)
    neg_score = torch.einsum("nd,nkd->nk", predictions, pool[negatives])  # (N, k)
    return true_score > neg_score.max(dim=1).values


def retrieval_accuracy(
    predictions: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, pool: torch.Tensor
) -> float:
    """Share of predictions whose true next sentence wins among its 1 + k candidates."""
    return retrieval_hits(predictions, targets, negatives, pool).double().mean().item()
