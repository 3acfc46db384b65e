"""How evenly a mixture-of-experts model spreads its tokens, measured from the router logits of a forward pass.

Every :class:`~llms_from_scratch.nn.moe.MoEFeedForward` keeps its last ``router_logits`` (tokens, n_experts).
From them:

* :func:`expert_counts`: how many top-k choices each expert received (the routing is recomputed with
  :func:`~llms_from_scratch.nn.moe.route`, so the correction bias of sigmoid routers counts exactly as in the
  forward pass); :func:`layer_expert_counts` stacks them for every MoE layer of a model;
* :func:`max_share`: the share of tokens the busiest expert processes (``top_k / n_experts`` when balanced, 1 when
  every token visits it);
* :func:`coefficient_of_variation`: the standard deviation of the counts over their mean (0 when balanced);
* :func:`router_z_loss`: ST-MoE's router z-loss, the mean squared log-sum-exp of the logits, which grows when the
  router's logits drift to large values.

The auxiliary load-balancing loss itself is :func:`~llms_from_scratch.nn.moe.load_balancing_loss`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn.moe import MoEConfig, MoEFeedForward, route

__all__ = ["coefficient_of_variation", "expert_counts", "layer_expert_counts", "max_share", "router_z_loss"]


def _token_weights(n_tokens: int, attention_mask: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """1.0 for every token that counts, 0.0 for padding: ``attention_mask`` (batch, tokens) flattened."""
    if attention_mask is None:
        return torch.ones(n_tokens, device=device)
    weights = attention_mask.reshape(-1).to(device=device, dtype=torch.float32)
    if weights.numel() != n_tokens:
        raise ValueError(f"attention_mask covers {weights.numel()} tokens but the router saw {n_tokens}; pass the "
                         "mask of the batch whose forward pass produced these logits")
    return weights


@torch.no_grad()
def expert_counts(router_logits: torch.Tensor, cfg: MoEConfig, correction_bias: torch.Tensor | None = None,
                  attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Top-k choices per expert, ``(n_experts,)`` float32; padding (``attention_mask`` 0) is left out."""
    _, ids = route(router_logits, cfg, correction_bias)  # (tokens, top_k)
    weights = _token_weights(ids.shape[0], attention_mask, ids.device)
    counts = torch.zeros(cfg.n_experts, dtype=torch.float32, device=ids.device)
    return counts.scatter_add_(0, ids.reshape(-1), weights.repeat_interleave(ids.shape[1]))


def layer_expert_counts(model: nn.Module, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`expert_counts` of every MoE layer of ``model`` after its last forward pass: ``(layers, n_experts)``."""
    layers = [m for m in model.modules() if isinstance(m, MoEFeedForward) and m.router_logits is not None]
    if not layers:
        raise ValueError("no router logits: run a forward pass of a model with MoE layers first")
    return torch.stack([expert_counts(m.router_logits, m.cfg, m.correction_bias, attention_mask) for m in layers])


def max_share(counts: torch.Tensor, top_k: int) -> torch.Tensor:
    """Share of the tokens that visit the busiest expert, per row of ``counts`` (..., n_experts).

    Each token makes ``top_k`` choices, so the tokens number ``counts.sum() / top_k``; an even spread gives
    ``top_k / n_experts`` and one expert that every token visits gives 1.
    """
    return counts.max(dim=-1).values * top_k / counts.sum(dim=-1)


def coefficient_of_variation(counts: torch.Tensor) -> torch.Tensor:
    """Standard deviation over mean of the expert counts, per row of ``counts`` (..., n_experts).

    The population standard deviation (divide by ``n_experts``): 0 for a perfectly even load, and
    ``sqrt(n_experts / top_k - 1)`` when all tokens go to the same ``top_k`` experts.
    """
    return counts.std(dim=-1, unbiased=False) / counts.mean(dim=-1)


def router_z_loss(router_logits: list[torch.Tensor] | tuple[torch.Tensor, ...],
                  attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """ST-MoE's router z-loss, ``mean over tokens of logsumexp(logits)**2``, averaged over all layers' tokens.

    Differentiable, so it can be added to the training loss (ST-MoE weights it by 0.001); ``attention_mask``
    (batch, tokens) leaves padding out.
    """
    if not router_logits:
        raise ValueError("no router logits: run a forward pass of a model with MoE layers first")
    total = torch.zeros((), dtype=torch.float32, device=router_logits[0].device)
    n_tokens = torch.zeros_like(total)
    for logits in router_logits:
        weights = _token_weights(logits.shape[0], attention_mask, logits.device)
        z = torch.logsumexp(logits.float(), dim=-1)  # (tokens,)
        total = total + (z.square() * weights).sum()
        n_tokens = n_tokens + weights.sum()
    return total / n_tokens
