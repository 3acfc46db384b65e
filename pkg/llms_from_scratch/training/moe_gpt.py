"""Chapter 4's GPTModel with mixture-of-experts feed-forward blocks, and the two ways to keep its experts balanced.

A configuration with ``moe_experts`` set swaps every block's ``ff`` for a
:class:`~llms_from_scratch.nn.moe.MoEFeedForward` of SwiGLU experts; everything else is chapter 4's model. The
MoE settings live in the model configuration (the pretraining checkpoint keeps it), under these keys:

``moe_experts``, ``moe_top_k``, ``moe_hidden_dim``
    experts per layer, experts each token visits, and each expert's SwiGLU width;
``moe_balance``
    ``"none"``; ``"aux"``: softmax router (Switch Transformer, Qwen3-MoE) trained with ``moe_aux_weight`` times
    :func:`~llms_from_scratch.nn.moe.load_balancing_loss`; ``"bias"``: sigmoid router with DeepSeek-V3's
    selection-only correction bias, which :func:`update_correction_bias` moves by ``moe_bias_rate`` after each
    optimizer step (up for experts below the mean load, down for those above), with no extra loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..ch04 import GPTModel
from ..nn.moe import MoEConfig, MoEFeedForward, collect_router_logits, load_balancing_loss
from .pretrain_args import MOE_BALANCING, default_expert_hidden_dim

__all__ = ["MOE_BALANCING", "aux_loss", "build_gpt", "default_expert_hidden_dim", "moe_block_config",
           "update_correction_bias"]


def moe_block_config(cfg: dict[str, Any]) -> MoEConfig | None:
    """The :class:`MoEConfig` of every block, or ``None`` for chapter 4's dense model (no ``moe_experts``)."""
    if not cfg.get("moe_experts"):
        return None
    balance = cfg.get("moe_balance", "none")
    if balance not in MOE_BALANCING:
        raise ValueError(f"moe_balance must be one of {', '.join(MOE_BALANCING)}, got {balance!r}")
    top_k = cfg.get("moe_top_k", 2)
    hidden = cfg.get("moe_hidden_dim") or default_expert_hidden_dim(cfg["emb_dim"], top_k)
    bias = balance == "bias"
    return MoEConfig(n_experts=cfg["moe_experts"], n_experts_per_tok=top_k, hidden_dim=hidden,
                     scoring="sigmoid" if bias else "softmax", correction_bias=bias)


def build_gpt(cfg: dict[str, Any]) -> GPTModel:
    """``GPTModel(cfg)``, with MoE feed-forward blocks when ``cfg`` asks for them (see the module docstring)."""
    model = GPTModel(cfg)
    moe = moe_block_config(cfg)
    if moe is not None:
        for block in model.trf_blocks:
            block.ff = MoEFeedForward(cfg["emb_dim"], moe)  # TransformerBlock calls self.ff(x) and nothing else
    return model


def aux_loss(model: nn.Module, cfg: dict[str, Any]) -> torch.Tensor | None:
    """``moe_aux_weight * load_balancing_loss`` over the last forward pass, or ``None`` unless balancing is "aux"."""
    moe = moe_block_config(cfg)
    if moe is None or cfg.get("moe_balance") != "aux":
        return None
    logits = collect_router_logits(model)
    return cfg.get("moe_aux_weight", 0.01) * load_balancing_loss(logits, moe.n_experts, moe.n_experts_per_tok)


@torch.no_grad()
def update_correction_bias(model: nn.Module, counts: torch.Tensor, rate: float) -> None:
    """DeepSeek-V3's balancing step: each MoE layer's correction bias moves by ``rate`` towards an even load.

    ``counts`` (layers, n_experts) holds the top-k choices each expert received during the optimizer step (see
    :func:`.moe_stats.layer_expert_counts`); an expert above its layer's mean load gets ``-rate``, one below
    ``+rate``, one exactly at the mean nothing.
    """
    layers = [m for m in model.modules() if isinstance(m, MoEFeedForward)]
    if any(m.correction_bias is None for m in layers):
        raise ValueError("update_correction_bias needs MoE layers with a correction bias (moe_balance 'bias')")
    if counts.shape != (len(layers), layers[0].cfg.n_experts if layers else 0):
        raise ValueError(f"counts has shape {tuple(counts.shape)}; expected (layers, n_experts) = "
                         f"({len(layers)}, {layers[0].cfg.n_experts if layers else 0})")
    for layer, row in zip(layers, counts):
        row = row.to(layer.correction_bias.device, torch.float32)
        layer.correction_bias += rate * torch.sign(row.mean() - row)
