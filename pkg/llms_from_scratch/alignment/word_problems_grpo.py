"""GRPO on arithmetic word problems with a pretrained chat model (SmolLM2-135M-Instruct): a set-up cheap enough
for a CPU.

What changes from the tiny-GPT recipe (:mod:`.addition_recipe`), and why:

* prompts go through the model's chat template (:func:`chat_prompts`), the way the model was tuned to be asked;
* only the top ``n`` blocks and the final norm train (:func:`train_top_blocks`); the frozen blocks below still
  run forward, but nothing is stored or computed for their gradients, and AdamW keeps state for a tenth of the
  weights;
* rollouts are sampled with the KV cache of :mod:`llms_from_scratch.serving.generation`
  (:func:`cached_rollouts`): with 135M parameters, prompts of some 60 tokens and answers of up to 32, re-running
  the whole sequence for every new token (what :func:`.rollouts.sample_completions` does to stay exact for the
  book's ``GPTModel``) would cost most of the run.

The GRPO update itself is :mod:`.grpo`'s (advantages, clipped loss, statistics) and the loop is
:class:`.rl_loop.RLSession` (history, evaluations, checkpoints that resume).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..serving.generation import left_pad, stream
from .addition import pass_at_k
from .grpo import GRPOConfig, RewardFn, grpo_step, train_grpo
from .logprobs import completion_logprobs, masked_mean
from .rl_loop import EvaluateFn
from .rollouts import Rollouts
from .word_problems import WordProblem, parse_final_integer

INSTRUCTION = "Answer with a single number."
# the stricter instruction of the answer-format warm-up: one short line that ends on the result
WORKED_INSTRUCTION = "Reply with one line: the calculation, then = and the result."

# each template's calculation, its numbers in the order the story gives them
EQUATIONS = {"add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "add_sub": "{0} + {1} - {2}",
             "mul_add": "{0} * {1} + {2}", "sub_sub": "{0} - {1} - {2}"}


def worked_answer(problem: WordProblem) -> str:
    """The reply the warm-up teaches: the problem's calculation and its result, e.g. ``"18 + 6 - 8 = 16"``."""
    return f"{EQUATIONS[problem.template].format(*problem.numbers)} = {problem.answer}"


def chat_prompts(tokenizer: Any, problems: Sequence[WordProblem], instruction: str = INSTRUCTION) -> list[list[int]]:
    """Token ids of each problem as one user turn in the tokenizer's chat format, ready for the assistant's
    reply (the problem, a space, then ``instruction``)."""
    return [tokenizer.encode_chat([{"role": "user", "content": f"{p.text} {instruction}".strip()}])
            for p in problems]


def train_top_blocks(model: nn.Module, n_blocks: int) -> int:
    """Freeze every weight of a zoo decoder except its last ``n_blocks`` blocks and its final norm; returns the
    number of trainable parameters. The token embedding (tied to the output head in SmolLM2) stays frozen."""
    blocks = model.trf_blocks
    if not 1 <= n_blocks <= len(blocks):
        raise ValueError(f"n_blocks must be between 1 and the model's {len(blocks)} blocks, got {n_blocks}")
    model.requires_grad_(False)
    for module in [*blocks[len(blocks) - n_blocks:], model.final_norm]:
        module.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def cached_rollouts(model: nn.Module, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, eos_token_id: int,
                    pad_token_id: int, num_samples: int = 1, temperature: float = 1.0,
                    generator: torch.Generator | None = None) -> Rollouts:
    """``num_samples`` completions per prompt, sampled with a KV cache; same layout as
    :func:`.rollouts.sample_completions` (rows grouped per prompt, greedy at temperature 0)."""
    repeated = [list(p) for p in prompts for _ in range(num_samples)]
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = (t.to(device) for t in left_pad(repeated, pad_token_id))
    was_training = model.training
    model.eval()
    try:
        steps = list(stream(model, prompt_ids, max_new_tokens, temperature=temperature, eos_ids=[eos_token_id],
                            attention_mask=prompt_mask, pad_id=pad_token_id, generator=generator))
    finally:
        model.train(was_training)
    # stream runs in inference mode; cloning gives ordinary tensors that autograd may save later
    tokens = torch.stack(steps, dim=1).clone()  # (N, steps): pad after a row's end token
    is_eos = tokens == eos_token_id
    # a token is real up to and including the row's first end token
    ended_before = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0  # (N, steps)
    completion_mask = ~ended_before
    completion_ids = tokens.masked_fill(ended_before, pad_token_id)
    return Rollouts(prompt_ids.clone(), prompt_mask.bool().clone(), completion_ids, completion_mask,
                    is_eos.any(dim=1))


def grpo_rollout_step(policy: nn.Module, reference: nn.Module | None, optimizer: torch.optim.Optimizer,
                      prompts: Sequence[Sequence[int]], prompt_indices: Sequence[int], reward_fn: RewardFn,
                      config: GRPOConfig, *, eos_token_id: int, pad_token_id: int,
                      generator: torch.Generator | None = None) -> dict[str, float]:
    """:func:`.grpo.grpo_step` with rollouts from :func:`cached_rollouts`, and no update at all for a batch whose
    groups all have zero reward variance (with ``beta == 0``)."""
    return grpo_step(policy, reference, optimizer, prompts, prompt_indices, reward_fn, config,
                     eos_token_id=eos_token_id, pad_token_id=pad_token_id, generator=generator,
                     sampler=cached_rollouts, skip_flat_batches=True)


def train_grpo_cached(policy: nn.Module, reference: nn.Module | None, prompts: Sequence[Sequence[int]],
                      reward_fn: RewardFn, config: GRPOConfig, *, eos_token_id: int, pad_token_id: int,
                      evaluate: EvaluateFn | None = None, checkpoint_path: str | Path | None = None,
                      resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """:func:`.grpo.train_grpo` with :func:`grpo_rollout_step`'s choices (cached rollouts, flat batches skipped):
    same history, checkpoints and per-step random streams. Parameters that do not require gradients never change."""
    return train_grpo(policy, reference, prompts, reward_fn, config, eos_token_id=eos_token_id,
                      pad_token_id=pad_token_id, evaluate=evaluate, checkpoint_path=checkpoint_path, resume=resume,
                      progress=progress, sampler=cached_rollouts, skip_flat_batches=True)


def answer_format_sft(model: nn.Module, tokenizer: Any, problems: Sequence[WordProblem], *, steps: int,
                      batch_size: int, learning_rate: float, instruction: str = WORKED_INSTRUCTION,
                      reply: Callable[[WordProblem], str] = worked_answer, seed: int = 0) -> list[float]:
    """A short SFT warm-up on the answer format: each problem's chat prompt (with ``instruction``) followed by
    ``reply(problem)`` and the end token, the loss on the reply tokens only. Trains the parameters that require
    gradients (see :func:`train_top_blocks`); returns the loss of each step, measured before that step's update.

    The replies are short and end on the result, so that sampled replies reach their number within a few
    tokens; whether that number is right for problems the model has not seen is what GRPO then rewards.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("no parameter requires gradients; call train_top_blocks(model, n) first")
    eos = tokenizer.eos_ids[0]
    prompts = chat_prompts(tokenizer, problems, instruction)
    replies = [tokenizer.encode(reply(p)) + [eos] for p in problems]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    order = torch.randperm(len(problems), generator=torch.Generator().manual_seed(seed)).tolist()
    device = next(model.parameters()).device
    was_training = model.training
    model.train()
    losses = []
    try:
        for step in range(steps):
            # consecutive slices of one shuffled order, wrapping around when the problems run out
            rows = [order[(step * batch_size + i) % len(order)] for i in range(batch_size)]
            prompt_ids, prompt_mask = (t.to(device) for t in left_pad([prompts[r] for r in rows], eos))
            width = max(len(replies[r]) for r in rows)
            reply_ids = torch.tensor([replies[r] + [eos] * (width - len(replies[r])) for r in rows], device=device)
            reply_mask = torch.tensor([[i < len(replies[r]) for i in range(width)] for r in rows], device=device)
            logprobs = completion_logprobs(model, prompt_ids, prompt_mask, reply_ids, reply_mask)  # (batch, width)
            loss = -masked_mean(logprobs, reply_mask)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    finally:
        model.train(was_training)
    return losses


@torch.no_grad()
def answer_counts(model: nn.Module, tokenizer: Any, problems: Sequence[WordProblem], *, max_new_tokens: int,
                  num_samples: int = 1, temperature: float = 0.0, seed: int = 0, batch_size: int = 32,
                  instruction: str = INSTRUCTION) -> tuple[list[int], list[list[str]]]:
    """Per problem, how many of ``num_samples`` replies end on the right integer, and the replies' texts
    (greedy at temperature 0)."""
    eos = tokenizer.eos_ids[0]
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    counts, texts = [], []
    per_batch = max(1, batch_size // num_samples)
    for start in range(0, len(problems), per_batch):
        chunk = problems[start:start + per_batch]
        rollouts = cached_rollouts(model, chat_prompts(tokenizer, chunk, instruction), max_new_tokens=max_new_tokens,
                                   eos_token_id=eos, pad_token_id=eos, num_samples=num_samples,
                                   temperature=temperature, generator=generator)
        replies = [tokenizer.decode(c, skip_special=True) for c in rollouts.completions()]
        for i, problem in enumerate(chunk):
            mine = replies[i * num_samples:(i + 1) * num_samples]
            counts.append(sum(parse_final_integer(r) == problem.answer for r in mine))
            texts.append(mine)
    return counts, texts


def evaluate_word_problems(model: nn.Module, tokenizer: Any, problems: Sequence[WordProblem], *,
                           max_new_tokens: int, num_samples: int = 4, temperature: float = 1.0, seed: int = 0,
                           sampled_problems: int | None = None, instruction: str = INSTRUCTION) -> dict[str, Any]:
    """Greedy pass@1 on ``problems``; sampled pass@1 and pass@``num_samples`` on the first ``sampled_problems``
    of them (all by default); the greedy replies, and greedy pass@1 per template. ``instruction`` follows each
    problem in the prompt, as in :func:`chat_prompts`."""
    greedy, replies = answer_counts(model, tokenizer, problems, max_new_tokens=max_new_tokens,
                                    instruction=instruction)
    sampled_set = problems[:sampled_problems] if sampled_problems is not None else problems
    sampled, _ = answer_counts(model, tokenizer, sampled_set, max_new_tokens=max_new_tokens,
                               num_samples=num_samples, temperature=temperature, seed=seed,
                               instruction=instruction)
    by_template: dict[str, list[int]] = {}
    for problem, count in zip(problems, greedy):
        by_template.setdefault(problem.template, []).append(count)
    n = len(sampled_set)
    return {
        "greedy_pass@1": sum(greedy) / len(problems),
        "sampled_pass@1": sum(pass_at_k(num_samples, c, 1) for c in sampled) / n,
        f"sampled_pass@{num_samples}": sum(pass_at_k(num_samples, c, num_samples) for c in sampled) / n,
        "greedy_by_template": {t: sum(c) / len(c) for t, c in by_template.items()},
        "greedy_replies": [r[0] for r in replies],
    }
