"""Group Relative Policy Optimization (GRPO; Shao et al., DeepSeekMath, 2024) and its "Dr. GRPO" variant.

PPO needs a value model to tell a good completion from a lucky one. GRPO samples a *group* of G completions
for the same prompt and uses the group itself as the baseline: a completion's advantage is how much better its
reward is than the group's mean, divided by the group's standard deviation, and every token of that completion
gets the same advantage. The update is PPO's clipped objective per token::

    ratio_t   = pi(y_t | ...) / pi_old(y_t | ...)
    objective = min(ratio_t * A, clip(ratio_t, 1 - eps, 1 + eps) * A) - beta * KL_t(pi || pi_ref)

averaged over each completion's tokens and then over completions. A group whose completions all get the same
reward has zero advantages and teaches nothing; :func:`zero_variance_fraction` measures how much of a batch
that is.

Dr. GRPO (Liu et al., "Understanding R1-Zero-Like Training", 2025) removes two biases: dividing by a
completion's own length (which favours long wrong answers and short right ones) and dividing by the group's
standard deviation (which up-weights groups that are almost all right or all wrong). With ``dr_grpo=True`` the
advantage is ``reward - group mean`` and token terms are summed, then divided by one constant, the number of
completions times ``max_new_tokens``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .logprobs import KL_ESTIMATORS, completion_logprobs, kl_estimate, masked_mean
from .rl_loop import EvaluateFn, RLSession, step_generator
from .rollouts import Rollouts, sample_completions

RewardFn = Callable[[int, list[int]], float]  # (prompt index, completion tokens) -> reward
# (model, prompts, *, max_new_tokens, eos_token_id, pad_token_id, num_samples, temperature, generator) -> rollouts,
# rows grouped per prompt: :func:`.rollouts.sample_completions`, or a cached sampler for larger models
Sampler = Callable[..., Rollouts]


def group_advantages(rewards: torch.Tensor, scale_by_std: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """Advantages of ``(num_prompts, group_size)`` rewards: each minus its group's mean and, with
    ``scale_by_std``, divided by the group's (sample) standard deviation plus ``eps``. Same shape out."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be (num_prompts, group_size) with group_size >= 2, got {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale_by_std:
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


def zero_variance_fraction(rewards: torch.Tensor) -> float:
    """Share of groups (rows of ``(num_prompts, group_size)`` rewards) whose rewards are all equal."""
    return (rewards.max(dim=1).values == rewards.min(dim=1).values).float().mean().item()


def clipped_objective(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                      clip_eps: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate per token (to be maximised) and where clipping took effect.

    ``logprobs``/``old_logprobs`` are ``(batch, tokens)``; ``advantages`` ``(batch,)`` applies to every token of
    its row. Returns ``min(r * A, clip(r, 1 - eps, 1 + eps) * A)`` and a boolean ``(batch, tokens)`` that is True
    where the clipped term was the smaller one (its gradient is zero there).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    advantages = advantages[:, None]  # (batch, 1): one advantage for all tokens of a completion
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return torch.minimum(unclipped, clipped), clipped < unclipped


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
              completion_mask: torch.Tensor, *, ref_logprobs: torch.Tensor | None = None, beta: float = 0.0,
              clip_eps: float = 0.2, kl_estimator: str = "k3", dr_grpo: bool = False,
              max_new_tokens: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO loss (minimised) over ``(batch, tokens)`` completion log-probabilities, and statistics.

    GRPO averages each completion's token terms, then averages over completions. ``dr_grpo=True`` sums all token
    terms and divides by ``batch * max_new_tokens`` (default: the number of completion columns). ``ref_logprobs``
    is required when ``beta > 0``.
    """
    mask = completion_mask.bool()
    objective, was_clipped = clipped_objective(logprobs, old_logprobs, advantages, clip_eps)
    per_token = -objective
    kl = None
    if ref_logprobs is not None:
        kl = kl_estimate(logprobs, ref_logprobs, kl_estimator)
    if beta > 0:
        if kl is None:
            raise ValueError("beta > 0 needs ref_logprobs from the frozen reference model")
        per_token = per_token + beta * kl
    per_token = per_token.masked_fill(~mask, 0.0)
    if dr_grpo:
        columns = max_new_tokens if max_new_tokens is not None else mask.shape[1]
        loss = per_token.sum() / (mask.shape[0] * columns)
    else:
        loss = masked_mean(per_token, mask, dim=1).mean()
    stats = {"clip_fraction": masked_mean(was_clipped.float(), mask).item(),
             "kl": masked_mean(kl, mask).item() if kl is not None else float("nan")}
    return loss, stats


@dataclass
class GRPOConfig:
    """Settings of a GRPO run; a resumed run must use the same ones (``steps`` may grow)."""

    steps: int = 200
    prompts_per_step: int = 16  # groups per optimizer step
    group_size: int = 8  # G completions sampled per prompt
    learning_rate: float = 1e-4
    warmup_steps: int = 0  # the learning rate rises linearly over these steps (Adam's first steps are large)
    weight_decay: float = 0.0
    clip_eps: float = 0.2
    beta: float = 0.0  # weight of the KL penalty to the reference (0: no penalty, KL still measured)
    kl_estimator: str = "k3"
    dr_grpo: bool = False
    temperature: float = 1.0
    max_new_tokens: int = 8
    updates_per_batch: int = 1  # optimizer steps on each batch of rollouts (mu); >1 makes the clipping matter
    max_grad_norm: float | None = 1.0
    eval_interval: int = 25
    seed: int = 123

    def __post_init__(self) -> None:
        for name in ("steps", "prompts_per_step", "max_new_tokens", "updates_per_batch", "eval_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (a group of one has no baseline), got {self.group_size}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}")
        if self.beta < 0 or self.clip_eps <= 0:
            raise ValueError(f"beta must be >= 0 and clip_eps > 0, got beta={self.beta}, clip_eps={self.clip_eps}")


def grpo_step(policy: nn.Module, reference: nn.Module | None, optimizer: torch.optim.Optimizer,
              prompts: Sequence[Sequence[int]], prompt_indices: Sequence[int], reward_fn: RewardFn,
              config: GRPOConfig, *, eos_token_id: int, pad_token_id: int,
              generator: torch.Generator | None = None, sampler: Sampler = sample_completions,
              skip_flat_batches: bool = False) -> dict[str, float]:
    """Sample a group per prompt, score it, and update the policy; returns the step's statistics.

    ``sampler`` draws the completions (see :data:`Sampler`). With ``skip_flat_batches`` and ``config.beta == 0``,
    a batch in which every group's rewards are equal takes no optimizer step: its gradient is zero, but AdamW's
    momentum (and weight decay) would still move the weights.
    """
    rollouts: Rollouts = sampler(
        policy, [prompts[i] for i in prompt_indices], max_new_tokens=config.max_new_tokens,
        eos_token_id=eos_token_id, pad_token_id=pad_token_id, num_samples=config.group_size,
        temperature=config.temperature, generator=generator)
    completions = rollouts.completions()
    owners = [i for i in prompt_indices for _ in range(config.group_size)]  # row -> prompt index
    rewards = torch.tensor([float(reward_fn(i, c)) for i, c in zip(owners, completions)])
    rewards = rewards.view(len(prompt_indices), config.group_size)  # (num_prompts, G)
    device = rollouts.completion_ids.device
    advantages = group_advantages(rewards, scale_by_std=not config.dr_grpo).flatten().to(device)  # (N,)

    batch = (rollouts.prompt_ids, rollouts.prompt_mask, rollouts.completion_ids, rollouts.completion_mask)
    ref_logprobs = None
    if reference is not None:
        with torch.no_grad():
            ref_logprobs = completion_logprobs(reference, *batch)
    flat = skip_flat_batches and config.beta == 0 and not bool(advantages.abs().gt(0).any())
    policy.train()
    old_logprobs, losses = None, []
    stats: dict[str, float] = {"kl": float("nan"), "clip_fraction": 0.0}  # what a skipped batch reports
    for _ in range(0 if flat else config.updates_per_batch):
        logprobs = completion_logprobs(policy, *batch)
        if old_logprobs is None:  # the policy that sampled: before the first update it is the current one
            old_logprobs = logprobs.detach()
        loss, stats = grpo_loss(logprobs, old_logprobs, advantages, rollouts.completion_mask,
                                ref_logprobs=ref_logprobs, beta=config.beta, clip_eps=config.clip_eps,
                                kl_estimator=config.kl_estimator, dr_grpo=config.dr_grpo,
                                max_new_tokens=config.max_new_tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
    lengths = rollouts.completion_mask.sum(dim=1).float()
    return {"reward": rewards.mean().item(), "zero_variance": zero_variance_fraction(rewards),
            "loss": sum(losses) / len(losses) if losses else 0.0, "kl": stats["kl"], "clip_fraction": stats["clip_fraction"],
            "completion_length": lengths.mean().item(), "ended": rollouts.ended.float().mean().item()}


STEP_KEYS = ("reward", "zero_variance", "loss", "kl", "clip_fraction", "completion_length", "ended")


def train_grpo(policy: nn.Module, reference: nn.Module | None, prompts: Sequence[Sequence[int]],
               reward_fn: RewardFn, config: GRPOConfig, *, eos_token_id: int, pad_token_id: int,
               evaluate: EvaluateFn | None = None, checkpoint_path: str | Path | None = None, resume: bool = False,
               stop_at_step: int | None = None, progress: bool = True, sampler: Sampler = sample_completions,
               skip_flat_batches: bool = False) -> dict[str, Any]:
    """Train ``policy`` with GRPO on ``prompts`` (token-id lists) scored by ``reward_fn``; return the history.

    Each step draws ``config.prompts_per_step`` prompts without replacement and samples ``config.group_size``
    completions for each. ``reference`` (frozen; may be ``None`` when ``config.beta == 0``) gives the KL that is
    penalised and recorded. ``evaluate(policy)`` runs before the first step, every ``config.eval_interval`` steps
    and at the end; its metrics go to ``history["eval"]``. With ``checkpoint_path`` the policy, the optimizer and
    the history are saved (atomically, with a checksum) after every evaluation, and ``resume=True`` continues from
    that file; because every step's random draws depend only on (seed, step), the resumed run matches an
    uninterrupted one. ``stop_at_step`` ends this session early (save, then resume later). ``sampler`` and
    ``skip_flat_batches`` go to :func:`grpo_step`.
    """
    if config.beta > 0 and reference is None:
        raise ValueError("beta > 0 needs a reference model; pass a frozen copy of the starting policy")
    if config.prompts_per_step > len(prompts):
        raise ValueError(f"prompts_per_step={config.prompts_per_step} exceeds the {len(prompts)} prompts given")
    if reference is not None:
        reference.eval()
        reference.requires_grad_(False)
    device = next(policy.parameters()).device
    session = RLSession(policy, config, "grpo", STEP_KEYS, checkpoint_path=checkpoint_path, resume=resume,
                        evaluate=evaluate)

    def one_step(step: int) -> dict[str, float]:
        order = torch.randperm(len(prompts), generator=step_generator(config.seed, step, 0, torch.device("cpu")))
        for group in session.optimizer.param_groups:
            group["lr"] = config.learning_rate * min(1.0, (step + 1) / (config.warmup_steps + 1))
        return grpo_step(policy, reference, session.optimizer, prompts, order[:config.prompts_per_step].tolist(),
                         reward_fn, config, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                         generator=step_generator(config.seed, step, 1, device), sampler=sampler,
                         skip_flat_batches=skip_flat_batches)

    return session.run(one_step, ("reward", "zero_variance"), stop_at_step=stop_at_step, progress=progress)

