"""A verifiable task for GRPO: two-digit addition, a character tokenizer, a tiny GPT, short SFT, pass@k.

A problem is the prompt ``"12+45="``; the right completion is ``"57"`` followed by the end token. The reward
checks the completion exactly, so it cannot be gamed, and the 8,100 problems (both numbers from 10 to 99) split
into a held-out test set, a validation set for monitoring, and a training pool that SFT and GRPO draw from.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from .logprobs import masked_mean, token_logprobs
from .rollouts import sample_completions
from .sequences import pad_sequences

Problem = tuple[int, int]


class AdditionTokenizer:
    """One token per character of ``0123456789+=``, plus an end token and a padding token."""

    chars = "0123456789+="

    def __init__(self):
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.eos_token_id = len(self.chars)
        self.pad_token_id = len(self.chars) + 1
        self.vocab_size = len(self.chars) + 2

    def encode(self, text: str) -> list[int]:
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"characters {unknown} are not in the addition vocabulary {self.chars!r}")
        return [self.stoi[ch] for ch in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; the end token shows as ``<eos>``, padding as nothing."""
        names = {self.eos_token_id: "<eos>", self.pad_token_id: ""}
        return "".join(names.get(int(i), self.chars[int(i)] if 0 <= int(i) < len(self.chars) else "?") for i in ids)


def prompt_text(problem: Problem) -> str:
    return f"{problem[0]}+{problem[1]}="


def answer_text(problem: Problem) -> str:
    return str(problem[0] + problem[1])


@dataclass
class AdditionSplit:
    train: list[Problem]
    val: list[Problem]
    test: list[Problem]


def addition_split(num_test: int = 500, num_val: int = 200, seed: int = 0) -> AdditionSplit:
    """All two-digit additions, shuffled with ``seed`` into disjoint test, validation and training problems."""
    problems = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    if num_test + num_val >= len(problems):
        raise ValueError(f"num_test + num_val must leave training problems out of {len(problems)}")
    random.Random(seed).shuffle(problems)
    return AdditionSplit(train=problems[num_test + num_val:], val=problems[num_test:num_test + num_val],
                         test=problems[:num_test])


def tiny_gpt_config(tokenizer: AdditionTokenizer, emb_dim: int = 96, n_layers: int = 3, n_heads: int = 4
                    ) -> dict[str, Any]:
    """A ``GPTModel`` configuration of about 0.34M parameters for the addition task."""
    return {
        "vocab_size": tokenizer.vocab_size,
        "context_length": 16,  # "99+99=198" plus the end token is 10 tokens
        "emb_dim": emb_dim,
        "n_heads": n_heads,
        "n_layers": n_layers,
        "drop_rate": 0.0,  # no dropout: sampling and log-probabilities see the same network
        "qkv_bias": False,
    }


def target_ids(tokenizer: AdditionTokenizer, problem: Problem) -> list[int]:
    """The completion that earns the reward: the sum's digits and the end token."""
    return tokenizer.encode(answer_text(problem)) + [tokenizer.eos_token_id]


def exact_match_reward(tokenizer: AdditionTokenizer, problems: Sequence[Problem]):
    """``reward_fn(i, completion)`` for GRPO: 1.0 when the completion is exactly problem i's answer and the end
    token, else 0.0."""
    targets = [target_ids(tokenizer, p) for p in problems]

    def reward(index: int, completion: list[int]) -> float:
        return 1.0 if completion == targets[index] else 0.0

    return reward


def sft_loss(model: nn.Module, tokenizer: AdditionTokenizer, problems: Sequence[Problem]) -> torch.Tensor:
    """Mean negative log-likelihood of the answer tokens (the prompt is context, not a target)."""
    device = next(model.parameters()).device
    rows = [tokenizer.encode(prompt_text(p)) + target_ids(tokenizer, p) for p in problems]
    ids, mask = pad_sequences(rows, tokenizer.pad_token_id, side="right")
    answer_mask = mask.clone()
    for i, p in enumerate(problems):
        answer_mask[i, :len(prompt_text(p))] = False
    ids, answer_mask = ids.to(device), answer_mask.to(device)
    per_token = token_logprobs(model(ids), ids)  # (batch, length-1), entry t scores token t+1
    return -masked_mean(per_token, answer_mask[:, 1:])


def train_sft(model: nn.Module, tokenizer: AdditionTokenizer, problems: Sequence[Problem], *, steps: int,
              batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 123) -> list[float]:
    """Supervised fine-tuning on random batches of ``problems``; returns the loss of every step."""
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        loss = sft_loss(model, tokenizer, rng.sample(list(problems), batch_size))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def sft_to_target(model: nn.Module, tokenizer: AdditionTokenizer, train: Sequence[Problem], val: Sequence[Problem],
                  *, target: float, max_steps: int, check_every: int = 10, batch_size: int = 64,
                  learning_rate: float = 1e-3, seed: int = 123) -> dict[str, Any]:
    """SFT that stops as soon as greedy pass@1 on ``val`` reaches ``target`` (checked every ``check_every``
    steps), or after ``max_steps``: a deliberately half-trained starting point for RL.

    Returns the number of steps taken, the loss of every step, and the validation accuracy at each check.
    """
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    losses: list[float] = []
    checks: dict[str, list] = {"step": [], "val_greedy_pass@1": []}
    step = 0
    while step < max_steps:
        model.train()
        for _ in range(min(check_every, max_steps - step)):
            loss = sft_loss(model, tokenizer, rng.sample(list(train), batch_size))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
        accuracy = sum(correct_counts(model, tokenizer, val)) / len(val)
        checks["step"].append(step)
        checks["val_greedy_pass@1"].append(accuracy)
        if accuracy >= target:
            break
    return {"steps": step, "losses": losses, "checks": checks}


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased estimate of the chance that at least one of ``k`` samples is right, from ``num_correct`` right
    answers among ``num_samples`` (Chen et al., 2021): ``1 - C(n - c, k) / C(n, k)``."""
    if k > num_samples:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {num_samples}")
    if num_samples - num_correct < k:
        return 1.0
    return 1.0 - math.comb(num_samples - num_correct, k) / math.comb(num_samples, k)


@torch.no_grad()
def correct_counts(model: nn.Module, tokenizer: AdditionTokenizer, problems: Sequence[Problem], *,
                   num_samples: int = 1, temperature: float = 0.0, seed: int = 0, batch_size: int = 512
                   ) -> list[int]:
    """How many of ``num_samples`` completions are exactly right, per problem (greedy at temperature 0)."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    counts = []
    per_batch = max(1, batch_size // num_samples)
    for start in range(0, len(problems), per_batch):
        chunk = problems[start:start + per_batch]
        rollouts = sample_completions(
            model, [tokenizer.encode(prompt_text(p)) for p in chunk], max_new_tokens=4,  # "198" and the end token
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, num_samples=num_samples,
            temperature=temperature, generator=generator)
        completions = rollouts.completions()
        for i, p in enumerate(chunk):
            target = target_ids(tokenizer, p)
            counts.append(sum(c == target for c in completions[i * num_samples:(i + 1) * num_samples]))
    return counts


def evaluate_addition(model: nn.Module, tokenizer: AdditionTokenizer, problems: Sequence[Problem], *,
                      num_samples: int = 8, temperature: float = 1.0, seed: int = 0) -> dict[str, float]:
    """Greedy pass@1, and sampled pass@1 and pass@``num_samples`` at ``temperature``, over ``problems``."""
    greedy = correct_counts(model, tokenizer, problems, num_samples=1, temperature=0.0)
    sampled = correct_counts(model, tokenizer, problems, num_samples=num_samples, temperature=temperature, seed=seed)
    n = len(problems)
    return {
        "greedy_pass@1": sum(greedy) / n,
        "sampled_pass@1": sum(pass_at_k(num_samples, c, 1) for c in sampled) / n,
        f"sampled_pass@{num_samples}": sum(pass_at_k(num_samples, c, num_samples) for c in sampled) / n,
    }
