"""Five more implementations of chapter 3's ``MultiHeadAttention``, each computing the same function.

Every variant takes the same constructor arguments as ``MultiHeadAttention`` (``d_in, d_out, context_length, dropout,
num_heads, qkv_bias=False``) and stores its weights in its own layout. ``params_from_mha`` maps a
``MultiHeadAttention``'s parameters into that layout with differentiable tensor operations only (slicing,
concatenation, transposition), so the same mapping serves two purposes:

- ``variant.load_mha_weights(mha)`` copies the weights, to compare outputs;
- calling the variant on ``params_from_mha(mha_params)`` (``torch.func.functional_call``) routes gradients back to
  the ``MultiHeadAttention`` parameters, to compare gradients.

The variants (chapter 3's bonus notebook benchmarks them):

- ``MHAWrapper``: one ``CausalAttention`` module per head, concatenated, then ``out_proj``;
- ``MHACombinedQKV``: one linear layer computes queries, keys and values together;
- ``MHAEinsum``: projections and attention written with ``torch.einsum``;
- ``MHAPyTorchSDPA``: combined QKV plus ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels);
- ``MHAPyTorchClass``: ``torch.nn.MultiheadAttention`` (needs ``d_in == d_out``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from llms_from_scratch.ch03 import CausalAttention, MultiHeadAttention, check_length

__all__ = [
    "MHAWrapper",
    "MHACombinedQKV",
    "MHAEinsum",
    "MHAPyTorchSDPA",
    "MHAPyTorchClass",
    "VARIANTS",
]

Params = dict[str, torch.Tensor]


def _check_heads(d_out: int, num_heads: int) -> int:
    if num_heads < 1:
        raise ValueError(f"num_heads must be at least 1, got {num_heads}")
    if d_out % num_heads != 0:
        raise ValueError(
            f"d_out ({d_out}) must be divisible by num_heads ({num_heads}) so that every head gets the same width"
        )
    return d_out // num_heads


def _causal_mask(context_length: int) -> torch.Tensor:
    return torch.triu(torch.ones(context_length, context_length, dtype=torch.bool), diagonal=1)


class _FromMHA(nn.Module):
    """Shared plumbing: copy a ``MultiHeadAttention``'s weights into this variant's layout."""

    num_heads: int

    def params_from_mha(self, mha: Params) -> Params:
        raise NotImplementedError

    def load_mha_weights(self, mha: MultiHeadAttention) -> _FromMHA:
        """Copy ``mha``'s weights into this module (same function afterwards, up to float rounding)."""
        if mha.num_heads != self.num_heads:
            raise ValueError(f"cannot copy {mha.num_heads} heads into a module with {self.num_heads} heads")
        new = self.params_from_mha({name: p.detach() for name, p in mha.named_parameters()})
        own = dict(self.named_parameters())
        if new.keys() != own.keys():
            raise ValueError(
                f"{type(self).__name__}: parameters {sorted(own)} do not match the mapped ones {sorted(new)}; "
                f"were both modules built with the same qkv_bias?"
            )
        with torch.no_grad():
            for name, value in new.items():
                if own[name].shape != value.shape:
                    raise ValueError(f"{name}: shape {tuple(own[name].shape)} != mapped {tuple(value.shape)}")
                own[name].copy_(value)
        return self


def _qkv_weight(mha: Params, kind: str) -> torch.Tensor:
    # (3 * d_out, d_in): query rows first, then key rows, then value rows
    return torch.cat([mha[f"W_query.{kind}"], mha[f"W_key.{kind}"], mha[f"W_value.{kind}"]], dim=0)


def _out_proj(mha: Params) -> Params:
    return {"out_proj.weight": mha["out_proj.weight"], "out_proj.bias": mha["out_proj.bias"]}


class MHAWrapper(_FromMHA):
    """Chapter 3's wrapper with ``head_dim``-wide heads and an output projection, so it matches the fused module."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False
    ):
        super().__init__()
        self.num_heads = num_heads
        head_dim = _check_heads(d_out, num_heads)
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, head_dim, context_length, dropout, qkv_bias) for _ in range(num_heads)]
        )
        self.out_proj = nn.Linear(d_out, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context_vec = torch.cat([head(x) for head in self.heads], dim=-1)  # (b, num_tokens, d_out)
        return self.out_proj(context_vec)

    def params_from_mha(self, mha: Params) -> Params:
        head_dim = mha["W_query.weight"].shape[0] // self.num_heads
        out = _out_proj(mha)
        for h in range(self.num_heads):
            rows = slice(h * head_dim, (h + 1) * head_dim)  # head h owns these output rows
            for name in ("W_query", "W_key", "W_value"):
                for kind in ("weight", "bias"):
                    if f"{name}.{kind}" in mha:
                        out[f"heads.{h}.{name}.{kind}"] = mha[f"{name}.{kind}"][rows]
        return out


class MHACombinedQKV(_FromMHA):
    """One ``d_in -> 3 * d_out`` projection instead of three: one larger matrix multiplication."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False
    ):
        super().__init__()
        self.head_dim = _check_heads(d_out, num_heads)
        self.num_heads = num_heads
        self.d_out = d_out
        self.context_length = context_length
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", _causal_mask(context_length), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, _ = x.shape
        check_length(num_tokens, self.context_length)
        qkv = self.qkv(x)  # (b, num_tokens, 3 * d_out)
        qkv = qkv.view(b, num_tokens, 3, self.num_heads, self.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, b, num_heads, num_tokens, head_dim)
        queries, keys, values = qkv.unbind(0)

        attn_scores = queries @ keys.transpose(-2, -1)  # (b, num_heads, num_tokens, num_tokens)
        attn_scores = attn_scores.masked_fill(self.mask[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = self.dropout(torch.softmax(attn_scores / self.head_dim**0.5, dim=-1))

        context_vec = (attn_weights @ values).transpose(1, 2)  # (b, num_tokens, num_heads, head_dim)
        context_vec = context_vec.reshape(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)

    def params_from_mha(self, mha: Params) -> Params:
        out = {"qkv.weight": _qkv_weight(mha, "weight"), **_out_proj(mha)}
        if "W_query.bias" in mha:
            out["qkv.bias"] = _qkv_weight(mha, "bias")
        return out


class MHAEinsum(_FromMHA):
    """Projections and attention as ``torch.einsum`` expressions; weights stored as ``(d_in, d_out)`` matrices."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False
    ):
        super().__init__()
        self.head_dim = _check_heads(d_out, num_heads)
        self.num_heads = num_heads
        self.d_out = d_out
        self.context_length = context_length
        # initialised like nn.Linear (uniform in +-1/sqrt(d_in)), stored transposed so that x @ W reads naturally
        bound = 1 / d_in**0.5
        self.W_query = nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound))
        self.W_key = nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound))
        self.W_value = nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound))
        if qkv_bias:
            self.bias_q = nn.Parameter(torch.zeros(d_out))
            self.bias_k = nn.Parameter(torch.zeros(d_out))
            self.bias_v = nn.Parameter(torch.zeros(d_out))
        else:
            self.bias_q = self.bias_k = self.bias_v = None
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", _causal_mask(context_length), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        check_length(n, self.context_length)
        q = torch.einsum("bni,io->bno", x, self.W_query)  # (b, n, d_out)
        k = torch.einsum("bni,io->bno", x, self.W_key)
        v = torch.einsum("bni,io->bno", x, self.W_value)
        if self.bias_q is not None:
            q, k, v = q + self.bias_q, k + self.bias_k, v + self.bias_v

        # (b, n, d_out) -> (b, num_heads, n, head_dim)
        q = q.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = k.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        v = v.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        scores = torch.einsum("bhqd,bhkd->bhqk", q, k)  # every query against every key, per head
        scores = scores.masked_fill(self.mask[:n, :n], -torch.inf)
        weights = self.dropout(torch.softmax(scores / self.head_dim**0.5, dim=-1))
        context = torch.einsum("bhqk,bhkd->bhqd", weights, v)  # (b, num_heads, n, head_dim)

        context = context.transpose(1, 2).reshape(b, n, self.d_out)
        return self.out_proj(context)

    def params_from_mha(self, mha: Params) -> Params:
        out = {
            "W_query": mha["W_query.weight"].T,
            "W_key": mha["W_key.weight"].T,
            "W_value": mha["W_value.weight"].T,
            **_out_proj(mha),
        }
        if "W_query.bias" in mha:
            out.update(bias_q=mha["W_query.bias"], bias_k=mha["W_key.bias"], bias_v=mha["W_value.bias"])
        return out


class MHAPyTorchSDPA(MHACombinedQKV):
    """Combined QKV with PyTorch's fused ``scaled_dot_product_attention`` (flash / memory-efficient kernels)."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False
    ):
        super().__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias)
        self.dropout_p = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, _ = x.shape
        check_length(num_tokens, self.context_length)
        qkv = self.qkv(x).view(b, num_tokens, 3, self.num_heads, self.head_dim)
        queries, keys, values = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (b, num_heads, num_tokens, head_dim)

        # is_causal builds the mask inside the kernel; dropout must be switched off explicitly in eval mode
        context_vec = F.scaled_dot_product_attention(
            queries, keys, values, dropout_p=self.dropout_p if self.training else 0.0, is_causal=True
        )
        context_vec = context_vec.transpose(1, 2).reshape(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class MHAPyTorchClass(_FromMHA):
    """``torch.nn.MultiheadAttention`` with a causal mask; it requires ``d_in == d_out``."""

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias: bool = False
    ):
        super().__init__()
        _check_heads(d_out, num_heads)
        if d_in != d_out:
            raise ValueError(
                f"torch.nn.MultiheadAttention projects queries from d_out-dimensional inputs, so d_in ({d_in}) "
                f"must equal d_out ({d_out}); use another variant for d_in != d_out"
            )
        self.num_heads = num_heads
        self.context_length = context_length
        # bias=True gives out_proj its bias (as in MultiHeadAttention); the input bias is dropped when qkv_bias=False
        self.mha = nn.MultiheadAttention(d_out, num_heads, dropout=dropout, bias=True, batch_first=True)
        if not qkv_bias:
            self.mha.register_parameter("in_proj_bias", None)
        self.register_buffer("mask", _causal_mask(context_length), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        num_tokens = x.shape[1]
        check_length(num_tokens, self.context_length)
        # need_weights=False lets PyTorch use its fused attention kernel; in attn_mask True means "may not attend"
        out, _ = self.mha(x, x, x, attn_mask=self.mask[:num_tokens, :num_tokens], need_weights=False)
        return out

    def params_from_mha(self, mha: Params) -> Params:
        out = {"mha.in_proj_weight": _qkv_weight(mha, "weight"),
               "mha.out_proj.weight": mha["out_proj.weight"], "mha.out_proj.bias": mha["out_proj.bias"]}
        if "W_query.bias" in mha:
            out["mha.in_proj_bias"] = _qkv_weight(mha, "bias")
        return out


VARIANTS: dict[str, type[_FromMHA]] = {
    "wrapper": MHAWrapper,
    "combined_qkv": MHACombinedQKV,
    "einsum": MHAEinsum,
    "pytorch_sdpa": MHAPyTorchSDPA,
    "pytorch_class": MHAPyTorchClass,
}
