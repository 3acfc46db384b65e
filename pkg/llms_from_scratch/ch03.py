"""Chapter 3: attention mechanisms, from one self-attention head to batched multi-head causal attention.

The classes follow the chapter's order; each adds one idea to the previous one:

- ``SelfAttention_v1``: trainable query/key/value matrices as raw ``nn.Parameter`` tensors;
- ``SelfAttention_v2``: the same with ``nn.Linear`` layers (better initialisation, optional bias);
- ``CausalAttention``: batched inputs, a causal mask (a token sees only itself and earlier tokens) and dropout;
- ``MultiHeadAttentionWrapper``: several ``CausalAttention`` heads run one after another and concatenated;
- ``MultiHeadAttention``: all heads computed at once by splitting one projection with ``view``/``transpose``.

``MultiHeadAttention`` is the layer the GPT model of chapter 4 uses. ``PyTorchMultiHeadAttention`` (a bonus)
computes the same function with PyTorch's fused ``scaled_dot_product_attention`` kernel.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "SelfAttention_v1",
    "SelfAttention_v2",
    "CausalAttention",
    "MultiHeadAttentionWrapper",
    "MultiHeadAttention",
    "PyTorchMultiHeadAttention",
]


class SelfAttention_v1(nn.Module):
    """Scaled dot-product self-attention over one sequence, with weight matrices as plain parameters."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (num_tokens, d_in)
        keys = x @ self.W_key
        queries = x @ self.W_query
        values = x @ self.W_value
        attn_scores = queries @ keys.T  # (num_tokens, num_tokens): one row of scores per query
        # dividing by sqrt(d_k) keeps the scores' spread independent of the width, so softmax does not saturate
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values  # (num_tokens, d_out)


class SelfAttention_v2(nn.Module):
    """``SelfAttention_v1`` with ``nn.Linear`` projections (Kaiming-uniform init, optional bias)."""

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)
        attn_scores = queries @ keys.T
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        return attn_weights @ values


def check_length(num_tokens: int, context_length: int) -> None:
    if num_tokens > context_length:
        raise ValueError(
            f"the input has {num_tokens} tokens but the attention mask was built for context_length="
            f"{context_length}; truncate the input to the last {context_length} tokens or build the layer "
            f"with a larger context_length"
        )


class CausalAttention(nn.Module):
    """Single-head causal self-attention on batches: ``(batch, num_tokens, d_in) -> (batch, num_tokens, d_out)``."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False):
        super().__init__()
        self.d_out = d_out
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        # a buffer moves with the module (.to(device)) and is saved in the state dict, but is not trained
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, d_in = x.shape
        check_length(num_tokens, self.context_length)
        keys = self.W_key(x)
        queries = self.W_query(x)
        values = self.W_value(x)

        attn_scores = queries @ keys.transpose(1, 2)  # (b, num_tokens, num_tokens)
        # -inf above the diagonal becomes exactly 0 after softmax, so the rows still sum to 1
        attn_scores.masked_fill_(self.mask[:num_tokens, :num_tokens].bool(), -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        return attn_weights @ values  # (b, num_tokens, d_out)


class MultiHeadAttentionWrapper(nn.Module):
    """``num_heads`` independent ``CausalAttention`` heads whose outputs are concatenated.

    The output width is ``num_heads * d_out``: each head projects to ``d_out`` on its own.
    """

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False
    ):
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be at least 1, got {num_heads}")
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(x) for head in self.heads], dim=-1)


class MultiHeadAttention(nn.Module):
    """Multi-head causal self-attention with all heads computed in one batched matrix multiplication.

    ``d_out`` is the total output width; each of the ``num_heads`` heads works on ``head_dim = d_out // num_heads``
    columns of the shared query/key/value projections, and ``out_proj`` mixes the concatenated heads.
    """

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False
    ):
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be at least 1, got {num_heads}")
        if d_out % num_heads != 0:
            raise ValueError(
                f"d_out ({d_out}) must be divisible by num_heads ({num_heads}) so that every head gets the same "
                f"width; choose e.g. num_heads that divides {d_out}"
            )
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # mixes information across heads
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, d_in = x.shape
        check_length(num_tokens, self.context_length)

        keys = self.W_key(x)  # (b, num_tokens, d_out)
        queries = self.W_query(x)
        values = self.W_value(x)

        # split the last dimension into heads: (b, num_tokens, d_out) -> (b, num_tokens, num_heads, head_dim)
        keys = keys.view(b, num_tokens, self.num_heads, self.head_dim)
        queries = queries.view(b, num_tokens, self.num_heads, self.head_dim)
        values = values.view(b, num_tokens, self.num_heads, self.head_dim)

        # move heads next to the batch so one matmul handles all of them: -> (b, num_heads, num_tokens, head_dim)
        keys = keys.transpose(1, 2)
        queries = queries.transpose(1, 2)
        values = values.transpose(1, 2)

        attn_scores = queries @ keys.transpose(2, 3)  # (b, num_heads, num_tokens, num_tokens)
        mask_bool = self.mask[:num_tokens, :num_tokens].bool()
        attn_scores.masked_fill_(mask_bool, -torch.inf)

        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        context_vec = (attn_weights @ values).transpose(1, 2)  # (b, num_tokens, num_heads, head_dim)
        # merge the heads back: -> (b, num_tokens, d_out); contiguous() because transpose made the memory strided
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


# ---------------------------------------------------------------------------------------------------------- bonus


class PyTorchMultiHeadAttention(nn.Module):
    """``MultiHeadAttention`` with the attention itself done by ``F.scaled_dot_product_attention``.

    The fused kernel computes softmax(QK^T / sqrt(head_dim)) V with the causal mask built in (``is_causal=True``),
    without materialising the (num_tokens, num_tokens) score matrix where a flash/memory-efficient kernel applies.
    It needs no mask buffer and therefore no ``context_length``. The parameters have ``MultiHeadAttention``'s
    names, so ``load_state_dict(mha.state_dict())`` works; the chapter's ``mask`` buffer is ignored on loading.
    """

    def __init__(self, d_in: int, d_out: int, num_heads: int, dropout: float = 0.0, qkv_bias: bool = False):
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads must be at least 1, got {num_heads}")
        if d_out % num_heads != 0:
            raise ValueError(
                f"d_out ({d_out}) must be divisible by num_heads ({num_heads}) so that every head gets the same "
                f"width; choose e.g. num_heads that divides {d_out}"
            )
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        # created in MultiHeadAttention's order, so the same seed gives the same weights
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = dropout  # a probability: the kernel drops attention weights itself
        self.register_load_state_dict_pre_hook(_ignore_causal_mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, d_in = x.shape
        # (b, num_tokens, d_out) -> (b, num_tokens, num_heads, head_dim) -> (b, num_heads, num_tokens, head_dim)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        context_vec = F.scaled_dot_product_attention(
            queries, keys, values, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )  # (b, num_heads, num_tokens, head_dim)
        context_vec = context_vec.transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


def _ignore_causal_mask(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Drop ``MultiHeadAttention``'s ``mask`` buffer from a state dict being loaded: the kernel needs none."""
    state_dict.pop(prefix + "mask", None)
