"""An opt-in compiled decode step: ``torch.compile`` of the one-token forward pass, kept only where it is faster.

A batch-1 decode step on a CPU runs a few hundred small operators (norms, RoPE, attention over the cache, the
cache writes, the quantized products and their casts) for a handful of matrix-vector products. Their Python and
dispatch cost is a fixed share of every step that fewer bytes per weight cannot remove; TorchInductor turns the
step into a few generated C++ loops instead. Compiling takes seconds to minutes (once per process), so it is never
done unasked.

:class:`CompiledDecoding` wraps a decoder model without changing it: one-token steps with a KV cache and autograd
off go through the compiled forward; everything else (the prompt's prefill, training, calls without a cache) runs
the model itself. The whole forward is compiled, so the layer index and the cache position stay ordinary Python
values; TorchDynamo first specializes on them and then, after the first step that changes them, treats them as
symbols (``dynamic=None``, its automatic dynamic shapes), so a step compiles a few times in all, not once per
position. :func:`compile_for_decoding` compiles on a short warm-up, times the compiled step against the model's own
steps in alternating rounds, and returns whichever was faster, with the compile time, so that the caller can show
that one-off cost.

>>> fast, report = compile_for_decoding(model)
>>> report.compile_s, report.chosen
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

WARMUP_PROMPTS = (5, 3)  # two prompt lengths, so the positions and cache sizes turn symbolic during the warm-up
WARMUP_STEPS = 4  # decode steps per warm-up prompt (the first steps each change a specialized position)
MARGIN = 0.03  # the compiled step must be this much faster than the plain one to be kept
RACE_MAX_LENGTH = 4096  # cache slots of the race when the caller names none (a long chat or a server's request)


class CompiledDecoding(nn.Module):
    """``model`` (a decoder with ``cfg`` and ``new_cache``) whose one-token cached steps run compiled."""

    def __init__(self, model: nn.Module, *, backend: str = "inductor") -> None:
        super().__init__()
        self.model = model
        self.compiled_forward = torch.compile(model.forward, backend=backend, dynamic=None)

    @property
    def cfg(self):  # noqa: ANN201 - the wrapped model's config, whatever its type
        return self.model.cfg

    def new_cache(self, batch_size: int, max_length: int):  # noqa: ANN201 - the wrapped model's cache type
        return self.model.new_cache(batch_size, max_length)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, cache=None,
                last_token_only: bool = False) -> torch.Tensor:
        if cache is not None and input_ids.shape[1] == 1 and not torch.is_grad_enabled():
            return self.compiled_forward(input_ids, attention_mask, cache, last_token_only)
        return self.model(input_ids, attention_mask, cache, last_token_only)


@dataclass(frozen=True)
class CompileReport:
    """What :func:`compile_for_decoding` measured: seconds spent in the warm-up (mostly compiling), the median
    seconds of a decode step with and without compiling, and which one it kept (``"compiled"`` / ``"plain"``)."""

    compile_s: float
    compiled_step_s: float
    plain_step_s: float
    chosen: str


def _steps(model: nn.Module, rows: int, prompt: int, steps: int, seed: int = 0, max_length: int = 0
           ) -> list[float]:
    """Seconds of each of ``steps`` greedy one-token steps after a random prompt of ``prompt`` tokens, in a cache
    of ``max_length`` slots (at least the tokens it has to hold)."""
    vocab = model.cfg.vocab_size
    ids = torch.randint(0, vocab, (rows, prompt), generator=torch.Generator().manual_seed(seed))
    times = []
    with torch.inference_mode():
        cache = model.new_cache(rows, max(prompt + steps, max_length))
        tokens = ids
        for _ in range(steps):
            start = time.perf_counter()
            logits = model(tokens, None, cache, True)[:, -1]
            tokens = logits.argmax(dim=-1, keepdim=True)
            times.append(time.perf_counter() - start)
    return times[1:] if prompt > 1 else times  # the first call of a prompt is its prefill


def compile_for_decoding(model: nn.Module, rows: int = 1, *, rounds: int = 3, steps: int = 8,
                         backend: str = "inductor", max_length: int | None = None) -> tuple[nn.Module, CompileReport]:
    """``model`` with its decode step compiled where that measured faster here, else ``model`` itself.

    Warms the compiled step up on ``rows`` sequences (this is where compiling happens), then races it against the
    model's own step for ``rounds`` alternating rounds of ``steps`` steps and keeps the faster; the plain model
    stays unless the compiled step is :data:`MARGIN` faster. Returns the model to decode with and a
    :class:`CompileReport`.

    ``max_length`` is the number of cache slots the caller's requests will allocate (prompt plus new tokens;
    default: the model's context length, at most :data:`RACE_MAX_LENGTH`). The race runs in a cache of that size,
    so that it measures the step the caller will run: while the cache was one tensor with a layer axis, the
    compiled step copied the whole cache once per layer, grew with the cache's size and lost to the plain step in
    large caches that a race in a short one never saw (``nn/kv_cache.py`` now keeps a buffer per layer).
    """
    if max_length is None:
        max_length = min(int(getattr(model.cfg, "context_length", RACE_MAX_LENGTH)), RACE_MAX_LENGTH)
    compiled = CompiledDecoding(model, backend=backend)
    start = time.perf_counter()
    for prompt in WARMUP_PROMPTS:
        _steps(compiled, rows, prompt, WARMUP_STEPS)
    compile_s = time.perf_counter() - start
    times: dict[str, list[float]] = {"compiled": [], "plain": []}
    for r in range(rounds):
        order = (("compiled", compiled), ("plain", model))
        for name, candidate in order if r % 2 == 0 else order[::-1]:
            times[name] += _steps(candidate, rows, WARMUP_PROMPTS[0], steps + 1, seed=r, max_length=max_length)
    median = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    keep = median["compiled"] < (1 - MARGIN) * median["plain"]
    report = CompileReport(compile_s, median["compiled"], median["plain"], "compiled" if keep else "plain")
    return (compiled if keep else model), report
