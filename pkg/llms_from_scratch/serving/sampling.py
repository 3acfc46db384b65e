"""What a generation request may ask for, checked without importing torch: :class:`SamplingParams`, whole-number
counts and seeds, and the context limit of prompt plus new tokens.

:mod:`.generation` uses and re-exports all of it; the CLI checks its options with it before loading torch or a
model, and the server turns the same ``ValueError`` into a 400 answer.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields, replace
from typing import Any

# the seeds torch.Generator.manual_seed accepts (int64's minimum to uint64's maximum)
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1


class ContextLengthError(ValueError):
    """The prompt plus ``max_new_tokens`` do not fit into the model's context (the message names both numbers)."""


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_whole_number(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an ``int`` when it is a whole number in ``[minimum, maximum]``; otherwise a ``ValueError``
    naming ``name`` and the allowed range (a float such as ``2.0`` or ``1e9`` is refused: counts are integers)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ValueError(f"{name} must be a whole number {allowed}, got {value}")
    return value


def context_limit(model: Any) -> int | None:
    """The most tokens, prompt included, that one sequence of ``model`` may hold; None where length is unbounded.

    That is the config's ``context_length``, except for a model whose every layer attends within a sliding
    window through rotary positions (Mistral 7B v0.1): each query there sees at most the last ``window`` keys
    and RoPE depends only on the distance between tokens, so the model computes the same thing at any length,
    and its ring-buffer cache keeps ``window`` keys per layer however long the sequence grows. A model without
    a ``cfg.context_length`` is not checked.
    """
    cfg = getattr(model, "cfg", None)
    limit = getattr(cfg, "context_length", None)
    if limit is None or not hasattr(cfg, "layer_window"):
        return limit
    windowed = all(cfg.layer_window(i) is not None for i in range(cfg.n_layers))
    unbounded = windowed and not cfg.learned_pos_emb and not cfg.strict_context and cfg.mla is None
    return None if unbounded else int(limit)


def check_context(model: Any, prompt_tokens: int, max_new_tokens: int) -> None:
    """Raise :class:`ContextLengthError` when a prompt of ``prompt_tokens`` tokens plus ``max_new_tokens`` new ones
    exceed :func:`context_limit` (checked before anything is allocated for them)."""
    limit = context_limit(model)
    if limit is None or prompt_tokens + max_new_tokens <= limit:
        return
    if prompt_tokens < limit:
        fix = f"ask for at most {limit - prompt_tokens} new tokens or shorten the prompt"
    elif max_new_tokens < limit:
        fix = f"shorten the prompt to at most {limit - max_new_tokens} tokens"
    else:
        fix = "shorten the prompt and ask for fewer new tokens"
    raise ContextLengthError(
        f"a prompt of {prompt_tokens} tokens plus max_new_tokens={max_new_tokens} makes "
        f"{prompt_tokens + max_new_tokens} tokens, more than this model's context of {limit}: {fix}")


@dataclass(frozen=True)
class SamplingParams:
    """How each next token is picked; validated when created, shared by ``generate``, ``stream``, the CLI and
    the server.

    ``temperature`` 0 picks the most likely token (greedy) and ignores ``top_k``/``top_p``; above 0 the
    logits are divided by it and a token is drawn. ``top_k`` keeps the k most likely tokens, ``top_p`` the
    smallest set whose probability reaches p. ``repetition_penalty`` (CTRL-style, > 1 discourages) applies to
    every token already in the prompt or the output. ``seed`` seeds the random draws when no ``generator`` is
    passed to :func:`~.generation.stream`.
    """

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        # every message names the field and its allowed values, so the CLI and the server can show it as is
        if not _is_real(self.temperature) or not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature!r}")
        if self.top_k is not None:
            check_whole_number("top_k", self.top_k, minimum=1)
        if self.top_p is not None and not (_is_real(self.top_p) and 0.0 < self.top_p <= 1.0):  # NaN fails too
            raise ValueError(f"top_p must be a number in (0, 1], got {self.top_p!r}")
        penalty = self.repetition_penalty
        if penalty is not None and not (_is_real(penalty) and math.isfinite(penalty) and penalty > 0):
            raise ValueError(f"repetition_penalty must be a finite number > 0 (1 = off), got {penalty!r}")
        if self.seed is not None:
            check_whole_number("seed", self.seed, minimum=SEED_MIN, maximum=SEED_MAX)

    @classmethod
    def resolve(cls, sampling: SamplingParams | None = None, **overrides: Any) -> SamplingParams:
        """``sampling`` (default: greedy) with the keyword ``overrides`` applied, e.g. ``temperature=0.7``."""
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown sampling option(s) {sorted(unknown)}; "
                            f"known: {[f.name for f in fields(cls)]}")
        base = sampling if sampling is not None else cls()
        return replace(base, **overrides) if overrides else base
