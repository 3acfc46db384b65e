"""Log-probabilities of completion tokens and KL estimates: the arithmetic every alignment recipe shares.

A causal model's logits at position t predict token t+1, so the log-probability of a sequence's tokens is read
from the logits one position to the left. :func:`token_logprobs` does that shift once; DPO averages its result
per sequence (:func:`compute_logprobs`), GRPO and PPO keep it per token (:func:`completion_logprobs`).

KL estimators (Schulman, "Approximating KL divergence", 2020). With samples drawn from the policy and
``log_ratio = log pi_ref(x) - log pi(x)``:

* ``k1 = -log_ratio``: unbiased, but single samples are often negative, so it is noisy;
* ``k3 = exp(log_ratio) - 1 - log_ratio``: also unbiased, never negative, and with low variance when the two
  distributions are close. GRPO (DeepSeekMath) penalises each token with it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .sequences import to_right_padding

KL_ESTIMATORS = ("k1", "k3")


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Log-probability of each next token: ``(batch, length, vocab)`` logits and ``(batch, length)`` labels give
    ``(batch, length - 1)``, entry t holding ``log p(labels[t + 1] | labels[:t + 1])``."""
    targets = labels[:, 1:]  # token t+1 is the target of position t
    log_probs = F.log_softmax(logits[:, :-1, :].float(), dim=-1)
    return torch.gather(log_probs, dim=-1, index=targets.unsqueeze(-1)).squeeze(-1)


def compute_logprobs(logits: torch.Tensor, labels: torch.Tensor, selection_mask: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """Mean log-probability per sequence of ``labels`` under ``logits``; returns ``(batch,)``.

    ``logits`` ``(batch, length, vocab)`` come from running the model on ``labels`` ``(batch, length)``.
    ``selection_mask`` ``(batch, length)`` picks the label tokens that count (the first token, which nothing
    predicts, never counts).
    """
    per_token = token_logprobs(logits, labels)  # (batch, length-1)
    if selection_mask is None:
        return per_token.mean(dim=-1)
    mask = selection_mask[:, 1:].to(per_token.dtype)
    counts = mask.sum(dim=-1)
    if (counts == 0).any():
        raise ValueError("a sequence has no selected tokens; is allowed_max_length shorter than its prompt?")
    return (per_token * mask).sum(dim=-1) / counts


def completion_logprobs(model: nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                        completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Log-probability of every completion token under ``model``: ``(batch, completion_length)``, zero where
    ``completion_mask`` is False.

    ``prompt_ids``/``prompt_mask`` ``(batch, P)`` may be padded on either side; ``completion_ids``/
    ``completion_mask`` ``(batch, C)`` are right-padded and start right after each prompt. Before the forward pass
    every row's real tokens are moved to the front, so a model without attention masks or position ids (the
    book's ``GPTModel``) gives each row exactly what it gives the row alone.
    """
    if prompt_ids.shape[0] != completion_ids.shape[0]:
        raise ValueError(f"{prompt_ids.shape[0]} prompts but {completion_ids.shape[0]} completions")
    ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (batch, P + C)
    mask = torch.cat([prompt_mask.bool(), completion_mask.bool()], dim=1)
    packed, packed_mask = to_right_padding(ids, mask)
    per_token = token_logprobs(model(packed), packed)  # (batch, P + C - 1), entry t scores packed token t+1
    # the completion's first token sits at packed position prompt_length; its log-prob is at entry prompt_length-1
    prompt_lengths = prompt_mask.bool().sum(dim=1)
    if bool((prompt_lengths == 0).any()):
        raise ValueError("a prompt has no real tokens; every completion needs a prompt to condition on")
    columns = prompt_lengths[:, None] - 1 + torch.arange(completion_ids.shape[1], device=ids.device)[None, :]
    columns = columns.clamp(max=per_token.shape[1] - 1)  # padding columns past the end: masked out below
    gathered = torch.gather(per_token, 1, columns)  # (batch, C)
    return gathered.masked_fill(~completion_mask.bool(), 0.0)


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from log-probabilities of tokens sampled from pi (same shape out)."""
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k3":
        return torch.exp(log_ratio) - 1.0 - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; use one of {KL_ESTIMATORS}")


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``values`` over the True entries of ``mask`` (all of them, or along ``dim``)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    return (values * mask).sum(dim=dim) / mask.sum(dim=dim).clamp(min=1.0)
