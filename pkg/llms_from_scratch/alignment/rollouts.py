"""Sampling completions from a policy: the rollouts that GRPO and PPO score and learn from.

A batch of rollouts is laid out the way the loss functions read it::

    prompt_ids      (N, P)  left-padded, so every completion starts in the same column
    completion_ids  (N, C)  right-padded after the end-of-sequence token (or after max_new_tokens)
    completion_mask (N, C)  True on generated tokens, the end-of-sequence token included
    ended           (N,)    True where the completion produced the end-of-sequence token

The book's ``GPTModel`` has learned absolute positions and no padding mask, so a padded row would not be
computed as it is alone. Generation therefore keeps each row's real tokens at the front of a working buffer
(right padding, which a causal model never looks at) and reads each row's next-token logits at its own last
real position. Every step re-runs the model on the whole buffer: simple and exact, and cheap for the short
completions and small models of the recipes here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from .sequences import pad_sequences


@dataclass
class Rollouts:
    """Prompts and the completions sampled for them (shapes in the module docstring)."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    ended: torch.Tensor

    def completions(self) -> list[list[int]]:
        """Each completion's real tokens (the end-of-sequence token included where there is one)."""
        return [row[mask].tolist() for row, mask in zip(self.completion_ids, self.completion_mask)]

    def __len__(self) -> int:
        return self.prompt_ids.shape[0]


def _next_tokens(logits: torch.Tensor, temperature: float, top_k: int | None,
                 generator: torch.Generator | None) -> torch.Tensor:
    """One token per row from ``(batch, vocab)`` logits: greedy at temperature 0, otherwise sampled."""
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample_completions(model: nn.Module, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                       eos_token_id: int, pad_token_id: int, num_samples: int = 1, temperature: float = 1.0,
                       top_k: int | None = None, generator: torch.Generator | None = None) -> Rollouts:
    """Sample ``num_samples`` completions for each prompt (token-id lists); rows come grouped per prompt.

    Row ``i * num_samples + j`` holds sample ``j`` of prompt ``i``. A completion stops after it produces
    ``eos_token_id`` or after ``max_new_tokens`` tokens. ``temperature=0`` decodes greedily. The model is put in
    eval mode for sampling and returned to the mode it was in.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 decodes greedily), got {temperature}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    repeated = [list(p) for p in prompts for _ in range(num_samples)]
    prompt_ids, prompt_mask = pad_sequences(repeated, pad_token_id, side="left")
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    lengths = prompt_mask.sum(dim=1)  # (N,) real tokens per row in the working buffer
    context_length = getattr(getattr(model, "pos_emb", None), "num_embeddings", None)
    if context_length is not None and int(lengths.max()) + max_new_tokens > context_length:
        raise ValueError(f"a prompt of {int(lengths.max())} tokens plus max_new_tokens={max_new_tokens} exceeds the "
                         f"model's context_length={context_length}; shorten the prompt or max_new_tokens")

    n = prompt_ids.shape[0]
    rows = torch.arange(n, device=device)
    buffer = torch.full((n, prompt_ids.shape[1] + max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    buffer[:, :prompt_ids.shape[1]] = torch.where(prompt_mask, prompt_ids, pad_token_id)
    # left padding -> real tokens first: a stable sort of "is padding" keeps their order
    order = torch.argsort((~prompt_mask).to(torch.int8), dim=1, stable=True)
    buffer[:, :prompt_ids.shape[1]] = torch.gather(buffer[:, :prompt_ids.shape[1]], 1, order)

    completion_ids = torch.full((n, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    completion_mask = torch.zeros((n, max_new_tokens), dtype=torch.bool, device=device)
    ended = torch.zeros(n, dtype=torch.bool, device=device)
    was_training = model.training
    model.eval()
    try:
        for step in range(max_new_tokens):
            active = ~ended
            if not bool(active.any()):
                break
            width = int(lengths.max())
            logits = model(buffer[:, :width])[rows, lengths - 1]  # (N, vocab): each row's next-token logits
            tokens = _next_tokens(logits, temperature, top_k, generator)
            tokens = torch.where(active, tokens, torch.full_like(tokens, pad_token_id))
            completion_ids[:, step] = tokens
            completion_mask[:, step] = active
            buffer[rows[active], lengths[active]] = tokens[active]
            lengths = lengths + active.long()
            ended = ended | (active & (tokens == eos_token_id))
    finally:
        model.train(was_training)
    return Rollouts(prompt_ids, prompt_mask, completion_ids, completion_mask, ended)
