"""RLHF with PPO: a policy with a value head, a frozen reference, a per-token KL penalty, GAE and clipped losses.

One PPO step (InstructGPT's recipe, in the form most open implementations use):

1. sample completions from the policy (:func:`~.rollouts.sample_completions`) and score each with the task
   reward; a completion that never produced the end-of-sequence token loses ``no_eos_penalty``;
2. build a reward for every completion token: ``-beta * KL(policy || reference)`` on each token, plus the score on
   the last real token (a padding token never carries reward, whichever side the padding is on);
3. estimate advantages with GAE(gamma, lambda) from those rewards and the value head's predictions, and whiten
   them over the real tokens;
4. run several epochs over minibatches of the batch, minimising the clipped policy loss, ``vf_coef`` times the
   clipped value loss, and (optionally) minus ``entropy_coef`` times the entropy.

The value head is a linear map from the decoder's final-norm output (the hidden state the language-model head
reads) to one number per token, so the policy and the critic share one network, as in InstructGPT.

A few conventions of TRL's ``PPOTrainer`` are options here, all off by default, so the two implementations can be
compared one difference at a time: a separate value network (``PolicyWithValueHead(body, separate_value=True)``),
the score one position after the last real token (``PPOConfig.score_after_last``), whitening with the unbiased
variance (``unbiased_whitening``), no gradient clipping (``max_grad_norm=None``) and prompts shuffled once per
pass and walked through (``prompt_order="epochs"``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .grpo import RewardFn, clipped_objective
from .logprobs import KL_ESTIMATORS, completion_logprobs, kl_estimate, masked_mean
from .rl_loop import EvaluateFn, RLSession, step_generator
from .rollouts import Rollouts, sample_completions
from .sequences import last_real_index


# ----------------------------------------------------------------------------------------------- the model
class PolicyWithValueHead(nn.Module):
    """A decoder ``body`` (chapter 4's ``GPTModel`` or a model-zoo ``DecoderLM``) plus ``value_head``, a linear map
    from the final-norm output to one value per token.

    ``forward(ids)`` returns the body's logits, so the wrapper can stand in for the body anywhere;
    :meth:`logits_and_values` returns ``(logits, values)`` from the same forward pass. With
    ``separate_value=True`` the value head reads a copy of the body instead (``value_body``, trained by the value
    loss only), as TRL's PPO does with its separate value model; it costs a second forward pass.
    """

    def __init__(self, body: nn.Module, separate_value: bool = False) -> None:
        super().__init__()
        if not hasattr(body, "final_norm") or not hasattr(body, "tok_emb"):
            raise TypeError(f"PolicyWithValueHead needs a decoder with tok_emb and final_norm, got {type(body).__name__}")
        self.body = body
        self.value_body = copy.deepcopy(body) if separate_value else None
        self.value_head = nn.Linear(body.tok_emb.embedding_dim, 1)
        # values start near zero: the first advantages then come from the rewards rather than from noise
        nn.init.normal_(self.value_head.weight, std=1e-3)
        nn.init.zeros_(self.value_head.bias)

    def logits_and_values(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, tokens, vocab)`` logits and ``(batch, tokens)`` values of right-padded ``ids``."""
        critic = self.body if self.value_body is None else self.value_body
        captured: list[torch.Tensor] = []
        # the hook lives for one call only, so a deep copy of the model never carries it
        handle = critic.final_norm.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            logits = self.body(ids)
            if self.value_body is not None:
                self.value_body(ids)
        finally:
            handle.remove()
        return logits, self.value_head(captured[-1]).squeeze(-1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.body(ids)


class _Capture:
    """Calls the policy once for :func:`completion_logprobs` and keeps the logits and values of that call, laid
    out like the (right-padded) sequences ``completion_logprobs`` packed."""

    def __init__(self, policy: PolicyWithValueHead) -> None:
        self.policy = policy
        self.logits: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        self.logits, self.values = self.policy.logits_and_values(ids)
        return self.logits


def _completion_columns(prompt_mask: torch.Tensor, num_columns: int, width: int) -> torch.Tensor:
    """Columns ``(batch, C)`` of the packed sequence whose outputs predict each completion token: the value of the
    state before token t is read where token t's log-probability is (see :func:`completion_logprobs`)."""
    prompt_lengths = prompt_mask.bool().sum(dim=1)
    columns = prompt_lengths[:, None] - 1 + torch.arange(num_columns, device=prompt_mask.device)[None, :]
    return columns.clamp(max=width - 1)  # padding columns past the end are masked by the caller


def evaluate_completions(policy: PolicyWithValueHead, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                         completion_ids: torch.Tensor, completion_mask: torch.Tensor, with_entropy: bool = False,
                         value_mask: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Log-probabilities, values and (optionally) entropies of every completion token, each ``(batch, C)`` and
    zero on padding, from one forward pass of ``policy``. ``value_mask`` (default ``completion_mask``) says where
    values are kept: :func:`score_slot_mask` adds the slot after the last real token."""
    capture = _Capture(policy)
    logprobs = completion_logprobs(capture, prompt_ids, prompt_mask, completion_ids, completion_mask)
    mask = completion_mask.bool()
    columns = _completion_columns(prompt_mask, completion_ids.shape[1], capture.values.shape[1] - 1)
    keep = mask if value_mask is None else value_mask.bool()
    values = torch.gather(capture.values, 1, columns).masked_fill(~keep, 0.0)
    entropy = None
    if with_entropy:
        index = columns[..., None].expand(-1, -1, capture.logits.shape[-1])  # (batch, C, vocab)
        log_p = F.log_softmax(torch.gather(capture.logits, 1, index).float(), dim=-1)
        entropy = -(log_p.exp() * log_p).sum(dim=-1).masked_fill(~mask, 0.0)
    return logprobs, values, entropy


# ----------------------------------------------------------------------------------------------- rewards
def score_slot_mask(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` of right-padded completions plus the first padding slot of each row that has one: TRL's PPO puts
    the score there and learns a value there (the state after the end token); a full row is left as it is."""
    mask = mask.bool()
    lengths = mask.sum(dim=1, keepdim=True)  # (batch, 1): index of the first padding slot
    positions = torch.arange(mask.shape[1], device=mask.device)[None, :]
    return mask | (positions == lengths)


def token_rewards(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor,
                  ended: torch.Tensor | None = None, *, beta: float, no_eos_penalty: float = 0.0,
                  kl_estimator: str = "k1", score_mask: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards ``(batch, C)`` and the per-token KL estimate used for them.

    Every real token gets ``-beta * kl``; the last real token of each row (padding on either side) also gets the
    row's score, minus ``no_eos_penalty`` where ``ended`` is False. Padding gets 0. With ``score_mask`` the score
    goes on the last True entry of ``score_mask`` instead (:func:`score_slot_mask`: the slot after the last token).
    """
    mask = mask.bool()
    kl = kl_estimate(logprobs, ref_logprobs, kl_estimator).masked_fill(~mask, 0.0)
    scores = scores.to(kl.dtype)
    if ended is not None and no_eos_penalty:
        scores = scores - no_eos_penalty * (~ended.bool()).to(kl.dtype)
    rewards = -beta * kl
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_real_index(mask if score_mask is None else score_mask)] += scores
    return rewards, kl


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8,
           unbiased: bool = False) -> torch.Tensor:
    """Scale ``values`` to unit variance over the True entries of ``mask`` (and, with ``shift_mean``, to zero
    mean); padding stays 0 and does not enter the statistics. Uses the population variance, or with ``unbiased``
    the sample variance (divided by n - 1, as TRL does)."""
    mask = mask.bool()
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        count = mask.sum()
        if count < 2:
            raise ValueError("unbiased whitening needs at least two real entries; use a larger batch")
        variance = variance * count / (count - 1)
    out = (values - mean) * torch.rsqrt(variance + eps)
    if not shift_mean:
        out = out + mean
    return out.masked_fill(~mask, 0.0)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns, both ``(batch, C)`` and zero on padding.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``, where the value and
    advantage after the last real token are 0 (the episode ends there). Real tokens must be contiguous in each row
    (left or right padding). Returns are ``A_t + V_t``, the value head's regression targets.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantages[:, t] = (delta + gamma * lam * next_advantage) * mask[:, t]
        next_value, next_advantage = values[:, t], advantages[:, t]  # both 0 where t is padding
    return advantages, (advantages + values) * mask


# ----------------------------------------------------------------------------------------------- losses
def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip_eps: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped policy loss (minimised) averaged over real tokens, and the share of tokens clipped.

    All three tensors are ``(batch, C)``; each token has its own advantage, so GRPO's per-row
    :func:`clipped_objective` is applied with one token per row.
    """
    objective, clipped = clipped_objective(logprobs.reshape(-1, 1), old_logprobs.reshape(-1, 1),
                                           advantages.reshape(-1), clip_eps)
    objective, clipped = objective.view_as(logprobs), clipped.view_as(logprobs)
    return -masked_mean(objective, mask), masked_mean(clipped.float(), mask)


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               value_clip: float | None = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss ``0.5 * max((V - R)^2, (V_clip - R)^2)`` averaged over real tokens, where ``V_clip``
    keeps the new value within ``value_clip`` of the value at sampling time; and the share of tokens where the
    clipped term was the larger. ``value_clip=None`` gives the plain squared error."""
    unclipped = (values - returns) ** 2
    if value_clip is None:
        return 0.5 * masked_mean(unclipped, mask), torch.zeros((), device=values.device)
    clipped_values = old_values + torch.clamp(values - old_values, -value_clip, value_clip)
    clipped = (clipped_values - returns) ** 2
    return 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask), masked_mean((clipped > unclipped).float(), mask)


# ----------------------------------------------------------------------------------------------- one step
@dataclass
class PPOConfig:
    """Settings of a PPO run; a resumed run must use the same ones (``steps`` may grow)."""

    steps: int = 200
    prompts_per_step: int = 64  # rollouts per step (one completion per prompt)
    ppo_epochs: int = 4  # passes over each batch of rollouts
    minibatch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    beta: float = 0.05  # weight of the per-token KL penalty in the reward
    kl_estimator: str = "k1"  # k1 = log pi - log pi_ref per token, as in InstructGPT
    gamma: float = 1.0
    lam: float = 0.95
    clip_eps: float = 0.2
    value_clip: float | None = 0.2
    vf_coef: float = 0.1
    entropy_coef: float = 0.0
    whiten_rewards: bool = False
    no_eos_penalty: float = 1.0  # subtracted from the score of a completion without the end-of-sequence token
    temperature: float = 1.0
    max_new_tokens: int = 8
    max_grad_norm: float | None = 1.0
    eval_interval: int = 25
    seed: int = 123
    # TRL's PPOTrainer conventions, off by default (see the module docstring)
    score_after_last: bool = False  # score (and a learnt value) on the first padding slot, where there is one
    unbiased_whitening: bool = False
    prompt_order: str = "random"  # "random": each step draws afresh; "epochs": shuffle once per pass, walk through

    def __post_init__(self) -> None:
        for name in ("steps", "prompts_per_step", "ppo_epochs", "minibatch_size", "max_new_tokens", "eval_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}")
        if self.beta < 0 or self.clip_eps <= 0 or (self.value_clip is not None and self.value_clip <= 0):
            raise ValueError("beta must be >= 0, clip_eps and value_clip > 0 (value_clip=None turns clipping off)")
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError(f"gamma and lam must lie in [0, 1], got gamma={self.gamma}, lam={self.lam}")
        if self.temperature <= 0:
            raise ValueError(f"PPO samples from the policy: temperature must be > 0, got {self.temperature}")
        if self.prompt_order not in ("random", "epochs"):
            raise ValueError(f"prompt_order must be 'random' or 'epochs', got {self.prompt_order!r}")


def ppo_step(policy: PolicyWithValueHead, reference: nn.Module, optimizer: torch.optim.Optimizer,
             prompts: Sequence[Sequence[int]], prompt_indices: Sequence[int], reward_fn: RewardFn, config: PPOConfig,
             *, eos_token_id: int, pad_token_id: int, generator: torch.Generator | None = None,
             shuffle_generator: torch.Generator | None = None) -> dict[str, float]:
    """Sample one completion per prompt, score it, and run ``config.ppo_epochs`` epochs of minibatch updates;
    returns the step's statistics (``reward`` is the mean task score, before the KL and no-EOS terms)."""
    rollouts: Rollouts = sample_completions(
        policy.body, [prompts[i] for i in prompt_indices], max_new_tokens=config.max_new_tokens,
        eos_token_id=eos_token_id, pad_token_id=pad_token_id, temperature=config.temperature, generator=generator)
    device = rollouts.completion_ids.device
    scores = torch.tensor([float(reward_fn(i, c)) for i, c in zip(prompt_indices, rollouts.completions())],
                          device=device)
    completion_ids, mask = rollouts.completion_ids, rollouts.completion_mask
    if config.score_after_last:  # pad to max_new_tokens: every answer shorter than that has a slot after it
        room = config.max_new_tokens - completion_ids.shape[1]
        completion_ids = F.pad(completion_ids, (0, room), value=pad_token_id)
        mask = F.pad(mask, (0, room), value=False)
    batch = (rollouts.prompt_ids, rollouts.prompt_mask, completion_ids, mask)
    # where values are learnt and the score sits: the real tokens, or (TRL) also the slot after them
    value_mask = score_slot_mask(mask) if config.score_after_last else mask.bool()
    with torch.no_grad():
        policy.eval()
        old_logprobs, old_values, old_entropy = evaluate_completions(policy, *batch, with_entropy=True,
                                                                     value_mask=value_mask)
        ref_logprobs = completion_logprobs(reference, *batch)
        rewards, kl = token_rewards(old_logprobs, ref_logprobs, scores, mask, rollouts.ended, beta=config.beta,
                                    no_eos_penalty=config.no_eos_penalty, kl_estimator=config.kl_estimator,
                                    score_mask=value_mask)
        if config.whiten_rewards:
            rewards = whiten(rewards, value_mask, shift_mean=False, unbiased=config.unbiased_whitening)
        advantages, returns = gae(rewards, old_values, value_mask, config.gamma, config.lam)
        advantages = whiten(advantages, mask, unbiased=config.unbiased_whitening)

    policy.train()
    totals = {"policy_loss": 0.0, "value_loss": 0.0, "clip_fraction": 0.0, "value_clip_fraction": 0.0,
              "approx_kl": 0.0}
    updates = 0
    n = len(rollouts)
    for _ in range(config.ppo_epochs):
        order = torch.randperm(n, generator=shuffle_generator)
        for start in range(0, n, config.minibatch_size):
            rows = order[start:start + config.minibatch_size].to(device)
            logprobs, values, entropy = evaluate_completions(policy, *(t[rows] for t in batch),
                                                             with_entropy=config.entropy_coef > 0,
                                                             value_mask=value_mask[rows])
            m = mask[rows]
            pg_loss, clip_fraction = policy_loss(logprobs, old_logprobs[rows], advantages[rows], m, config.clip_eps)
            vf_loss, value_clip_fraction = value_loss(values, old_values[rows], returns[rows], value_mask[rows],
                                                      config.value_clip)
            loss = pg_loss + config.vf_coef * vf_loss
            if entropy is not None:
                loss = loss - config.entropy_coef * masked_mean(entropy, m)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            with torch.no_grad():  # k3 between the sampling policy and the current one, a drift monitor
                totals["approx_kl"] += masked_mean(kl_estimate(old_logprobs[rows], logprobs.detach(), "k3"), m).item()
            totals["policy_loss"] += pg_loss.item()
            totals["value_loss"] += vf_loss.item()
            totals["clip_fraction"] += clip_fraction.item()
            totals["value_clip_fraction"] += value_clip_fraction.item()
            updates += 1
    stats = {key: value / updates for key, value in totals.items()}
    stats.update({
        "entropy": masked_mean(old_entropy, mask).item(),  # of the policy that sampled, per token
        "reward": scores.mean().item(),
        "kl": (kl * mask).sum(dim=1).mean().item(),  # per completion, summed over its tokens
        "completion_length": mask.sum(dim=1).float().mean().item(),
        "ended": rollouts.ended.float().mean().item(),
    })
    return stats


STEP_KEYS = ("reward", "kl", "policy_loss", "value_loss", "clip_fraction", "value_clip_fraction", "approx_kl",
             "entropy", "completion_length", "ended")


# ----------------------------------------------------------------------------------------------- training loop
def step_prompts(config: PPOConfig, num_prompts: int, step: int) -> list[int]:
    """The indices of the prompts of step ``step`` (from 0), fixed by (seed, step) so a resumed run draws the same.

    ``prompt_order="random"`` draws ``prompts_per_step`` without replacement at every step; ``"epochs"`` shuffles
    the prompts once per pass and walks through them, dropping the last incomplete batch (as a data loader with
    ``shuffle=True, drop_last=True`` does), so no prompt repeats within a pass.
    """
    cpu = torch.device("cpu")
    if config.prompt_order == "random":
        return torch.randperm(num_prompts, generator=step_generator(config.seed, step, 0, cpu))[
            :config.prompts_per_step].tolist()
    per_pass = num_prompts // config.prompts_per_step
    epoch, batch = divmod(step, per_pass)
    # seed + 2: a stream of its own, apart from the per-step draws (seed) and the minibatch shuffles (seed + 1)
    order = torch.randperm(num_prompts, generator=step_generator(config.seed + 2, epoch, 0, cpu))
    start = batch * config.prompts_per_step
    return order[start:start + config.prompts_per_step].tolist()


def train_ppo(policy: PolicyWithValueHead, reference: nn.Module, prompts: Sequence[Sequence[int]],
              reward_fn: RewardFn, config: PPOConfig, *, eos_token_id: int, pad_token_id: int,
              evaluate: EvaluateFn | None = None, checkpoint_path: str | Path | None = None, resume: bool = False,
              stop_at_step: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Train ``policy`` with PPO on ``prompts`` (token-id lists) scored by ``reward_fn``; return the history.

    Each step draws ``config.prompts_per_step`` prompts without replacement and samples one completion for each.
    ``reference`` (a frozen copy of the starting decoder) gives the per-token KL penalty. ``evaluate(policy)`` runs
    before the first step, every ``config.eval_interval`` steps and at the end; its metrics go to
    ``history["eval"]``. With ``checkpoint_path`` the policy (value head included), the optimizer and the history
    are saved atomically with a checksum after every evaluation interval, and ``resume=True`` continues from that
    file; every step's random draws depend only on (seed, step), so the resumed run matches an uninterrupted one.
    ``stop_at_step`` ends this session early (save, then resume later).
    """
    if not isinstance(policy, PolicyWithValueHead):
        raise TypeError("train_ppo needs a PolicyWithValueHead; wrap the decoder: PolicyWithValueHead(model)")
    if config.prompts_per_step > len(prompts):
        raise ValueError(f"prompts_per_step={config.prompts_per_step} exceeds the {len(prompts)} prompts given")
    policy_params = {id(p) for p in policy.parameters()}
    if any(id(p) in policy_params for p in reference.parameters()):
        raise ValueError("the reference shares weights with the policy; pass a frozen copy: copy.deepcopy(model)")
    reference.eval()
    reference.requires_grad_(False)
    device = next(policy.parameters()).device
    session = RLSession(policy, config, "ppo", STEP_KEYS, checkpoint_path=checkpoint_path, resume=resume,
                        evaluate=evaluate)

    def one_step(step: int) -> dict[str, float]:
        cpu = torch.device("cpu")
        return ppo_step(policy, reference, session.optimizer, prompts, step_prompts(config, len(prompts), step),
                        reward_fn, config, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                        generator=step_generator(config.seed, step, 1, device),
                        shuffle_generator=step_generator(config.seed + 1, step, 0, cpu))

    return session.run(one_step, ("reward", "kl"), stop_at_step=stop_at_step, progress=progress)
