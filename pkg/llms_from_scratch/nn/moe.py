"""Mixture-of-experts feed-forward: a router sends each token to a few of many SwiGLU experts.

Two routing schemes cover the families in the zoo:

* ``"softmax"`` (Qwen3-MoE, Mixtral): ``p = softmax(router(x))``, keep the top-k probabilities and, with
  ``norm_topk_prob``, divide them by their sum so the chosen weights add up to 1.
* ``"sigmoid"`` (DeepSeek-V3): each expert gets an independent score ``s = sigmoid(router(x))``. Selection is
  *group-limited*: experts are split into ``n_groups`` groups, a group is rated by the sum of its two best
  scores, only the best ``topk_groups`` groups stay eligible, and the top-k experts are picked among them.
  A learned ``correction_bias`` is added to the scores **for choosing only**; the weights that multiply the
  experts' outputs come from the unbiased scores (normalized, then multiplied by ``routed_scaling``).
  ``n_shared_experts`` experts (fused into one wider SwiGLU) see every token.

* ``"topk_softmax"`` (gpt-oss): the top-k *logits* are chosen first and a softmax over just those gives the
  weights (equal to softmax-then-renormalize, computed the way the reference does).

gpt-oss also gives the router and every expert projection a bias (``router_bias``, ``expert_bias``) and clamps
its experts' SwiGLU (``swiglu_limit``, ``swiglu_alpha``; see :class:`~llms_from_scratch.nn.ffn.SwiGLU`).

With ``shared_expert_gate`` (Qwen2-MoE, Qwen3-Next) the shared expert's output is scaled per token by
``sigmoid(w · x)``, a one-output linear gate, before it joins the routed experts' sum.

Expert ``e`` is ``experts[e]``, a plain :class:`~llms_from_scratch.nn.ffn.SwiGLU`, so a checkpoint's
per-expert tensors map one to one onto modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .ffn import SwiGLU


@dataclass(frozen=True)
class MoEConfig:
    """The mixture-of-experts part of a model config."""

    n_experts: int
    n_experts_per_tok: int  # top-k
    hidden_dim: int  # width of each expert's SwiGLU
    scoring: str = "softmax"  # "softmax", "sigmoid" or "topk_softmax"
    norm_topk_prob: bool = True
    n_groups: int = 1  # expert groups for group-limited routing (sigmoid scoring)
    topk_groups: int = 1
    routed_scaling: float = 1.0
    n_shared_experts: int = 0
    correction_bias: bool = False  # DeepSeek-V3's e_score_correction_bias (selection only)
    first_dense_layers: int = 0  # the first layers keep a dense SwiGLU (DeepSeek: first_k_dense_replace)
    shared_expert_gate: bool = False  # scale the shared expert by sigmoid(linear(x)) per token (Qwen3-Next)
    router_bias: bool = False  # the router's linear layer has a bias (gpt-oss)
    expert_bias: bool = False  # every expert projection has a bias (gpt-oss)
    swiglu_limit: float | None = None  # the experts' clamped SwiGLU (gpt-oss: 7.0); None = plain SwiGLU
    swiglu_alpha: float = 1.0  # the sharpness of the clamped SwiGLU's gate (gpt-oss: 1.702)

    def __post_init__(self) -> None:
        problems = []
        if self.scoring not in ("softmax", "sigmoid", "topk_softmax"):
            problems.append(f"scoring {self.scoring!r} is not 'softmax', 'sigmoid' or 'topk_softmax'")
        if self.scoring == "topk_softmax" and self.norm_topk_prob:
            problems.append("topk_softmax weights already sum to 1; set norm_topk_prob=False")
        if not 0 < self.n_experts_per_tok <= self.n_experts:
            problems.append(f"n_experts_per_tok ({self.n_experts_per_tok}) must be in 1..n_experts ({self.n_experts})")
        if self.hidden_dim <= 0:
            problems.append(f"the expert hidden_dim must be positive, got {self.hidden_dim}")
        if self.n_groups <= 0 or self.n_experts % self.n_groups:
            problems.append(f"n_experts ({self.n_experts}) must split evenly into n_groups ({self.n_groups})")
        elif self.n_groups > 1:
            if self.n_experts // self.n_groups < 2:
                problems.append("group-limited routing rates a group by its 2 best experts: use >= 2 per group")
            if not 0 < self.topk_groups <= self.n_groups:
                problems.append(f"topk_groups ({self.topk_groups}) must be in 1..n_groups ({self.n_groups})")
            if self.topk_groups * (self.n_experts // self.n_groups) < self.n_experts_per_tok:
                problems.append("the kept groups hold fewer experts than n_experts_per_tok")
        if self.shared_expert_gate and self.n_shared_experts <= 0:
            problems.append("shared_expert_gate needs a shared expert; set n_shared_experts >= 1")
        if problems:
            raise ValueError("invalid MoE config:\n  - " + "\n  - ".join(problems))


def route(logits: torch.Tensor, cfg: MoEConfig, correction_bias: torch.Tensor | None = None):
    """Router logits (tokens, n_experts) -> (weights, expert ids), each (tokens, top-k)."""
    k = cfg.n_experts_per_tok
    if cfg.scoring == "topk_softmax":
        top, ids = logits.topk(k, dim=-1)
        weights = top.softmax(dim=-1)
    elif cfg.scoring == "softmax":
        probs = logits.softmax(dim=-1, dtype=torch.float32)
        weights, ids = probs.topk(k, dim=-1)
    else:
        probs = logits.float().sigmoid()
        choice = probs if correction_bias is None else probs + correction_bias.float()
        if cfg.n_groups > 1:
            grouped = choice.view(-1, cfg.n_groups, cfg.n_experts // cfg.n_groups)  # (tokens, groups, per group)
            group_score = grouped.topk(2, dim=-1).values.sum(dim=-1)  # (tokens, groups)
            keep = group_score.topk(cfg.topk_groups, dim=-1).indices
            group_mask = torch.zeros_like(group_score, dtype=torch.bool).scatter(1, keep, True)
            choice = grouped.masked_fill(~group_mask[..., None], float("-inf")).flatten(1)
        ids = choice.topk(k, dim=-1).indices
        weights = probs.gather(1, ids)  # the bias picks experts but never weights them
    if cfg.norm_topk_prob:
        # DeepSeek adds 1e-20 so an all-zero sigmoid row cannot divide by zero
        weights = weights / (weights.sum(dim=-1, keepdim=True) + (1e-20 if cfg.scoring == "sigmoid" else 0.0))
    return weights * cfg.routed_scaling, ids


class MoEFeedForward(nn.Module):
    """Drop-in replacement for a SwiGLU block: ``x`` (batch, tokens, emb_dim) -> same shape.

    After each forward, ``router_logits`` (tokens, n_experts) holds this layer's router output, which
    :func:`load_balancing_loss` turns into the auxiliary training loss.

    ``correction_bias`` stays float32 whatever dtype the model is cast to (as DeepSeek and ``transformers``
    keep it): its entries are small offsets between nearly equal scores, and bfloat16's 8 significant bits
    would round some of them together and change which experts win. The loaders read it as float32 too.
    """

    FP32_BUFFERS = ("correction_bias",)  # buffers that model.to(dtype) and the loaders leave in float32

    def __init__(self, emb_dim: int, cfg: MoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.gate = nn.Linear(emb_dim, cfg.n_experts, bias=cfg.router_bias)
        self.experts = nn.ModuleList(
            SwiGLU(emb_dim, cfg.hidden_dim, bias=cfg.expert_bias, clamp_limit=cfg.swiglu_limit, alpha=cfg.swiglu_alpha)
            for _ in range(cfg.n_experts))
        if cfg.correction_bias:
            self.register_buffer("correction_bias", torch.zeros(cfg.n_experts, dtype=torch.float32))
        else:
            self.correction_bias = None
        shared = cfg.n_shared_experts * cfg.hidden_dim
        self.shared_experts = SwiGLU(emb_dim, shared) if shared else None
        self.shared_expert_gate = nn.Linear(emb_dim, 1, bias=False) if cfg.shared_expert_gate else None
        self.router_logits: torch.Tensor | None = None

    def _apply(self, fn, recurse: bool = True):
        bias = self.correction_bias
        out = super()._apply(fn, recurse)
        if bias is not None and self.correction_bias.dtype != torch.float32:
            moved = self.correction_bias  # fn changed the dtype: redo the move from the float32 original
            self.correction_bias = (moved if bias.is_meta else bias).to(device=moved.device, dtype=torch.float32)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # (tokens, emb_dim)
        if self.cfg.scoring == "sigmoid":  # DeepSeek scores in float32 whatever the model dtype
            logits = F.linear(flat.float(), self.gate.weight.float())
        else:
            logits = self.gate(flat)
        self.router_logits = logits
        weights, ids = route(logits, self.cfg, self.correction_bias)
        weights = weights.to(x.dtype)
        out = torch.zeros_like(flat)
        # loop over the experts that received tokens; each processes only its own tokens
        for e in ids.unique().tolist():
            token, slot = torch.where(ids == e)
            y = self.experts[e](flat[token]) * weights[token, slot, None]
            out.index_add_(0, token, y)
        out = out.view(shape)
        if self.shared_experts is not None:
            shared = self.shared_experts(x)
            if self.shared_expert_gate is not None:
                shared = torch.sigmoid(self.shared_expert_gate(x)) * shared
            out = out + shared
        return out


def load_balancing_loss(
    router_logits: list[torch.Tensor] | tuple[torch.Tensor, ...],
    n_experts: int,
    top_k: int,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Switch-Transformer auxiliary loss, averaged over all MoE layers' tokens.

    ``n_experts * sum_e f_e * P_e``, where ``f_e`` is the fraction of top-k assignments that went to expert
    ``e`` and ``P_e`` its mean router probability. It is 1 * top_k when routing is perfectly even and grows as
    tokens pile onto few experts. ``attention_mask`` (batch, tokens) leaves padding out of both averages.
    Multiply by the family's coefficient (Qwen3-MoE: 0.001) and add it to the language-modelling loss.
    """
    if not router_logits:
        raise ValueError("no router logits: run a forward pass of a model with MoE layers first")
    counts = torch.zeros(n_experts, dtype=torch.float32, device=router_logits[0].device)
    prob_sum = torch.zeros_like(counts)
    rows = 0.0
    for logits in router_logits:
        probs = logits.float().softmax(dim=-1)  # (tokens, n_experts)
        chosen = probs.topk(top_k, dim=-1).indices  # (tokens, top_k)
        w = torch.ones(probs.shape[0], device=probs.device) if attention_mask is None else (
            attention_mask.reshape(-1).to(device=probs.device, dtype=torch.float32))
        counts = counts + torch.zeros_like(counts).scatter_add_(0, chosen.reshape(-1), w.repeat_interleave(top_k))
        prob_sum = prob_sum + (probs * w[:, None]).sum(dim=0)
        rows = rows + w.sum()
    return n_experts * torch.sum((counts / rows) * (prob_sum / rows))


def collect_router_logits(model: nn.Module) -> list[torch.Tensor]:
    """The router logits every MoE layer of ``model`` stored during its last forward pass, in layer order."""
    return [m.router_logits for m in model.modules() if isinstance(m, MoEFeedForward) and m.router_logits is not None]
