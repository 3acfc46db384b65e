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
from typing import Any

import torch
from torch import nn

# the request checks live in a module without torch (the CLI runs them before importing it); they are part of
# this module's API too
from .sampling import (  # noqa: F401
    SEED_MAX,
    SEED_MIN,
    ContextLengthError,
    SamplingParams,
    check_context,
    check_whole_number,
    context_limit,
)


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
    scaled = logits / params.temperature
    if bool(torch.isposinf(scaled).any()) and not bool(torch.isposinf(logits).any()):
        # a tiny temperature overflowed the largest logits to inf, and softmax would turn inf - inf into NaN;
        # shifting by the row's maximum first keeps every value <= 0 and gives the same distribution
        scaled = (logits - logits.amax(dim=-1, keepdim=True)) / params.temperature
    logits = scaled
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


def check_prompt(model: nn.Module, input_ids: torch.Tensor) -> None:
    """Refuse, with a ``ValueError`` that says why, a prompt ``(batch, tokens)`` the model cannot read: no tokens,
    ids that are not integers, or ids outside the model's vocabulary."""
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"the prompt is empty (input_ids of shape {tuple(input_ids.shape)}): pass at least one "
                         "token, e.g. the tokenizer's beginning-of-text id")
    if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    vocab = getattr(getattr(model, "cfg", None), "vocab_size", None)
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0:
        raise ValueError(f"token id {low} is negative: token ids count from 0")
    if vocab is not None and high >= vocab:
        raise ValueError(f"token id {high} is outside this model's vocabulary (ids 0 to {vocab - 1}): encode the "
                         "prompt with the model's own tokenizer")


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

    The arguments are checked when ``stream`` is called, before the first token is asked for and before anything
    is allocated: a ``ValueError`` refuses an empty prompt, ids outside the vocabulary, a ``max_new_tokens`` that
    is not a whole number >= 0, and (as :class:`ContextLengthError`) a prompt plus ``max_new_tokens`` longer than
    the model's context (see :func:`context_limit`). A server can therefore answer a bad request with an error
    before it starts streaming.
    """
    params = SamplingParams.resolve(sampling, **overrides)
    max_new_tokens = check_whole_number("max_new_tokens", max_new_tokens, minimum=0)
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    check_prompt(model, input_ids)
    if generator is None and params.seed is not None:
        generator = torch.Generator(device=input_ids.device).manual_seed(params.seed)
    eos = torch.tensor(sorted(set(eos_ids or ())), dtype=torch.long, device=input_ids.device)
    if pad_id is None:
        pad_id = int(eos[0]) if len(eos) else 0
    batch, prompt_len = input_ids.shape
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids.device).long()
    if mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {tuple(mask.shape)} differs from input_ids {tuple(input_ids.shape)}")
    if not bool(mask.any(dim=1).all()):
        raise ValueError("a row of attention_mask has no real token (all zeros): every prompt needs at least one")
    check_context(model, prompt_len, max_new_tokens)  # before the cache for them is allocated
    return _decode(model, input_ids, mask, max_new_tokens, params, eos, pad_id, use_cache, generator)


@torch.inference_mode()
def _decode(model: nn.Module, input_ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int,
            params: SamplingParams, eos: torch.Tensor, pad_id: int, use_cache: bool,
            generator: torch.Generator | None) -> Iterator[torch.Tensor]:
    """The decoding loop behind :func:`stream`, on arguments it has checked."""
    batch, prompt_len = input_ids.shape
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
        if use_cache:
            # a new token is never padding, and None says so without a tensor to inspect: a compiled decode
            # step (nn/compiled_decoding.py) then runs the very graph its warm-up traced
            tokens, step_mask = nxt[:, None], None
        else:
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            step_mask = torch.cat([step_mask, torch.ones(batch, 1, dtype=mask.dtype, device=mask.device)], dim=1)


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

    # Decoding every id so far at each step would make a long reply quadratic. Only a short window is decoded: the
    # ids of the piece returned last (``context``, which fixes how the new ids join on: SentencePiece drops the
    # leading space of the first piece it decodes) plus the ids not yet returned. The new text is what decoding
    # the window adds to decoding its context.

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.context = 0  # the window starts here
        self.pending = 0  # ids from here on have not been returned as text yet

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes ("" while a character is still incomplete)."""
        self.ids.append(token_id)
        window = self.tokenizer.decode(self.ids[self.context:], skip_special=True)
        if window.endswith("\ufffd"):  # the character continues in the next token
            return ""
        known = self.tokenizer.decode(self.ids[self.context:self.pending], skip_special=True)
        if window.startswith(known):
            piece = window[len(known):]
        else:  # the new ids changed how the context decodes (never seen; kept correct at full cost)
            full = self.tokenizer.decode(self.ids, skip_special=True)
            piece = full[len(self.tokenizer.decode(self.ids[:self.pending], skip_special=True)):]
        self.context, self.pending = self.pending, len(self.ids)
        return piece
