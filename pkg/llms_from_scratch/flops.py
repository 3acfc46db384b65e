"""Floating-point operations of chapter 4's GPT model, counted from its architecture.

Only matrix multiplications are counted (2 FLOPs per multiply-add), which is what dominates: LayerNorm, GELU,
softmax, dropout and the residual additions together add well under 1% for GPT-2 sizes. Per sequence of ``T`` tokens
and per transformer block, with ``d = emb_dim``:

- query/key/value projections: ``2 * T * d * 3d``
- attention scores ``Q K^T`` and the weighted sum ``A V``: ``2 * T * T * d`` each (the model computes the full
  ``T x T`` matrix and masks it, so the causal mask saves nothing)
- output projection: ``2 * T * d * d``; feed-forward: ``2 * T * d * 4d * 2``

plus the output head, ``2 * T * d * vocab_size``. A backward pass costs twice the forward pass (one matrix product
for the gradient of the input and one for the weights), so a training step costs 3x the forward FLOPs. That gives
the familiar rule of thumb: training FLOPs ~ 6 * N * (tokens), with N the number of parameters; the attention
term ``12 * n_layers * T * d`` per token is what the rule leaves out.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Any

from llms_from_scratch.ch04 import GPT_CONFIG_124M
from llms_from_scratch.gpt2_sizes import GPT2_BOOK_NAMES, GPT2_MODEL_CONFIGS

__all__ = [
    "GPT2_SIZES",
    "gpt2_config",
    "FlopBreakdown",
    "forward_flops",
    "training_flops_per_step",
    "matmul_params",
    "num_params",
    "six_n_t",
]

# the four published GPT-2 sizes under the book's names, e.g. "gpt2-xl (1558M)"; everything else as in
# GPT_CONFIG_124M. The numbers come from gpt2_sizes, the one table of the sizes.
GPT2_SIZES: dict[str, dict[str, int]] = {
    GPT2_BOOK_NAMES[size]: dict(dims) for size, dims in GPT2_MODEL_CONFIGS.items()
}


def gpt2_config(name: str, **overrides: Any) -> dict[str, Any]:
    """Return the chapter-4 configuration dictionary of a GPT-2 size, e.g. ``gpt2_config("gpt2-xl (1558M)")``."""
    if name not in GPT2_SIZES:
        close = difflib.get_close_matches(name, list(GPT2_SIZES), n=2, cutoff=0.3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown GPT-2 size {name!r}{hint} Known sizes: {', '.join(GPT2_SIZES)}")
    return {**GPT_CONFIG_124M, **GPT2_SIZES[name], **overrides}


@dataclass(frozen=True)
class FlopBreakdown:
    """Forward-pass FLOPs for one sequence, by component (all blocks summed)."""

    num_tokens: int
    qkv: int
    attention_scores: int
    attention_values: int
    out_proj: int
    feed_forward: int
    out_head: int

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self) if f.name != "num_tokens")

    @property
    def per_token(self) -> float:
        return self.total / self.num_tokens

    @property
    def attention(self) -> int:
        """The part that grows with the sequence length (the T x T matrix products)."""
        return self.attention_scores + self.attention_values


def _check(cfg: dict[str, Any], num_tokens: int) -> None:
    if not 1 <= num_tokens <= cfg["context_length"]:
        raise ValueError(
            f"num_tokens must be between 1 and the model's context_length ({cfg['context_length']}), got {num_tokens}"
        )


def forward_flops(cfg: dict[str, Any], num_tokens: int) -> FlopBreakdown:
    """FLOPs of one forward pass of ``GPTModel(cfg)`` over one sequence of ``num_tokens`` tokens."""
    _check(cfg, num_tokens)
    t, d, n, v = num_tokens, cfg["emb_dim"], cfg["n_layers"], cfg["vocab_size"]
    return FlopBreakdown(
        num_tokens=t,
        qkv=n * 2 * t * d * 3 * d,
        attention_scores=n * 2 * t * t * d,  # all heads together: heads * (t x head_dim) @ (head_dim x t)
        attention_values=n * 2 * t * t * d,
        out_proj=n * 2 * t * d * d,
        feed_forward=n * 2 * t * d * 4 * d * 2,
        out_head=2 * t * d * v,
    )


def training_flops_per_step(cfg: dict[str, Any], batch_size: int, num_tokens: int) -> int:
    """FLOPs of one training step (forward + backward) on a batch of ``batch_size`` sequences of ``num_tokens``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return 3 * batch_size * forward_flops(cfg, num_tokens).total


def matmul_params(cfg: dict[str, Any]) -> int:
    """Weights that take part in matrix multiplications: all Linear weights including the output head."""
    d = cfg["emb_dim"]
    return cfg["n_layers"] * (3 * d * d + d * d + 2 * 4 * d * d) + d * cfg["vocab_size"]


def num_params(cfg: dict[str, Any], tied: bool = True) -> int:
    """All parameters of ``GPTModel(cfg)``; ``tied=True`` counts the output head and token embedding once."""
    d, v = cfg["emb_dim"], cfg["vocab_size"]
    qkv_bias = 3 * d if cfg["qkv_bias"] else 0
    block = (4 * d * d + qkv_bias + d) + (8 * d * d + 4 * d + d) + 2 * 2 * d  # attention, feed-forward, 2 LayerNorms
    total = v * d + cfg["context_length"] * d + cfg["n_layers"] * block + 2 * d + v * d
    return total - v * d if tied else total


def six_n_t(n: int, tokens: int) -> int:
    """The rule of thumb for training compute: 6 FLOPs per parameter per token."""
    return 6 * n * tokens
