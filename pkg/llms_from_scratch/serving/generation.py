"""Text generation with a KV cache: prefill the prompt once, then decode one token per step.

>>> from llms_from_scratch.serving.generation import SamplingParams, generate
>>> out = generate(model, input_ids, 20, eos_ids=tokenizer.eos_ids)                      # greedy
>>> out = generate(model, input_ids, 20, SamplingParams(temperature=0.7, top_p=0.9, seed=1))

Batched prompts of different lengths are left-padded and passed with an ``attention_mask`` (1 = real
token); each row then yields exactly the tokens it yields alone. :func:`stream` produces the same tokens one
step at a time, for printing text as it arrives.

On a CPU, ``model = llms_from_scratch.nn.prepare_for_decoding(model, batch_size=...)`` (once, before generating)
returns a model that shares the weights and uses, layer by layer, the matrix-product kernels that measured fastest
on this machine for that batch size, or the plain model where none beat it (see ``nn/autotune.py``); the values it
computes are those of plain ``F.linear``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import nn


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack token lists of different lengths: (input_ids, attention_mask), both (batch, longest)."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("every prompt needs at least one token")
    longest = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    mask = torch.zeros(len(sequences), longest, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, longest - len(seq):] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, longest - len(seq):] = 1
    return ids, mask


@dataclass(frozen=True)
class SamplingParams:
    """How each next token is picked; validated when created, shared by ``generate``, ``stream``, the CLI and the
    server.

    ``temperature`` 0 picks the most likely token (greedy) and ignores ``top_k``/``top_p``; above 0 the
    logits are divided by it and a token is drawn. ``top_k`` keeps the k most likely tokens, ``top_p`` the
    smallest set whose probability reaches p. ``repetition_penalty`` (CTRL-style, > 1 discourages) applies to
    every token already in the prompt or the output. ``seed`` seeds the random draws when no ``generator`` is
    passed to :func:`stream`.
    """

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    @classmethod
    def resolve(cls, sampling: SamplingParams | None = None, **overrides: Any) -> SamplingParams:
        """``sampling`` (default: greedy) with the keyword ``overrides`` applied, e.g. ``temperature=0.7``."""
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown sampling option(s) {sorted(unknown)}; "
                            f"known: {[f.name for f in fields(cls)]}")
        base = sampling if sampling is not None else cls()
        return replace(base, **overrides) if overrides else base


def next_token(
    logits: torch.Tensor,
    sampling: SamplingParams | None = None,
    *,
    seen: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    **overrides: Any,
) -> torch.Tensor:
    """Pick one token per row from ``logits`` (batch, vocab); ``seen`` (batch, vocab) marks tokens to penalize.

    ``sampling`` says how (default: greedy); keyword ``overrides`` such as ``temperature=1.0`` replace its fields.
    """
    params = SamplingParams.resolve(sampling, **overrides)
    logits = logits.float()
    penalty = params.repetition_penalty
    if penalty is not None and penalty != 1.0 and seen is not None:
        # CTRL-style penalty: shrink positive scores, grow negative ones, for tokens already present
        penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
        logits = torch.where(seen, penalized, logits)
    if params.temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits / params.temperature
    if params.top_k is not None and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p is not None and params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens ranked above it already reach top_p (the top token always stays)
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= params.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


@torch.inference_mode()
def stream(
    model: nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    sampling: SamplingParams | None = None,
    *,
    eos_ids: Iterable[int] | None = None,
    attention_mask: torch.Tensor | None = None,
    use_cache: bool = True,
    pad_id: int | None = None,
    generator: torch.Generator | None = None,
    **overrides: Any,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, (batch,), once per step.

    ``sampling`` picks the tokens (default: greedy); the keywords of :class:`SamplingParams` (``temperature=``,
    ``top_k=``, ``top_p=``, ``repetition_penalty=``, ``seed=``) may be passed instead or on top of it. A row
    that produced an end-of-sequence id is finished: later steps yield ``pad_id`` for it (default: the first
    eos id, else 0). Stops after ``max_new_tokens`` steps or when every row has finished.
    """
    params = SamplingParams.resolve(sampling, **overrides)
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if generator is None and params.seed is not None:
        generator = torch.Generator(device=input_ids.device).manual_seed(params.seed)
    eos = torch.tensor(sorted(set(eos_ids or ())), dtype=torch.long, device=input_ids.device)
    if pad_id is None:
        pad_id = int(eos[0]) if len(eos) else 0
    batch, prompt_len = input_ids.shape
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids.device).long()
    if mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {tuple(mask.shape)} differs from input_ids {tuple(input_ids.shape)}")
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    seen = None
    if params.repetition_penalty is not None:
        vocab = model.cfg.vocab_size
        seen = torch.zeros(batch, vocab, dtype=torch.bool, device=input_ids.device)
        seen.scatter_(1, input_ids, mask.bool())

    cache = model.new_cache(batch, prompt_len + max_new_tokens) if use_cache else None
    tokens, step_mask = input_ids, mask
    for _ in range(max_new_tokens):
        if use_cache:
            logits = model(tokens, step_mask, cache=cache, last_token_only=True)[:, -1]
        else:
            logits = model(tokens, step_mask, last_token_only=True)[:, -1]
        nxt = next_token(logits, params, seen=seen, generator=generator)
        nxt = torch.where(finished, torch.full_like(nxt, pad_id), nxt)
        yield nxt
        if seen is not None:
            seen.scatter_(1, nxt[:, None], True)
        if len(eos):
            finished |= torch.isin(nxt, eos)
            if bool(finished.all()):
                return
        ones = torch.ones(batch, 1, dtype=mask.dtype, device=mask.device)
        if use_cache:
            tokens, step_mask = nxt[:, None], ones
        else:
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            step_mask = torch.cat([step_mask, ones], dim=1)


def generate(model: nn.Module, input_ids: torch.Tensor, max_new_tokens: int, sampling: SamplingParams | None = None,
             **options: Any) -> torch.Tensor:
    """Return the prompt followed by the generated tokens, (batch, prompt + generated).

    Takes the same arguments as :func:`stream` (``eos_ids=``, ``attention_mask=``, sampling keywords, ...).
    """
    squeeze = input_ids.dim() == 1
    steps = list(stream(model, input_ids, max_new_tokens, sampling, **options))
    ids = input_ids[None] if squeeze else input_ids
    out = torch.cat([ids, torch.stack(steps, dim=1)], dim=1) if steps else ids
    return out[0] if squeeze else out


class TextStream:
    """Turns a stream of token ids into text pieces, holding back incomplete UTF-8 characters."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.sent = 0

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes ("" while a character is still incomplete)."""
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special=True)
        if text.endswith("\ufffd"):  # the character continues in the next token
            return ""
        piece, self.sent = text[self.sent:], len(text)
        return piece
