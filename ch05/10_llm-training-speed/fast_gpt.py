"""An optimized variant of chapter 4's ``GPTModel``, for the training-speed benchmark only: not the book's code.

``FastGPTModel`` *is* a ``GPTModel``: same submodules, same parameters, same state-dict keys, so it loads the
book's checkpoints unchanged and computes the same function (``tests/test_training_speed.py`` checks logits and
gradients). Only ``forward`` differs; it calls fused PyTorch kernels on the book's modules' own weights:

- ``F.layer_norm`` with ``norm.scale`` / ``norm.shift`` instead of the written-out mean / variance / divide;
- ``F.gelu(approximate="tanh")``, one kernel, instead of the written-out tanh formula;
- ``F.scaled_dot_product_attention(is_causal=True)`` instead of materialising masked scores and their softmax.

Dropout is applied as in the book, except inside attention, where SDPA draws its own dropout mask (with
``drop_rate=0``, as in the benchmark, the two models agree exactly up to float rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llms_from_scratch.ch03 import MultiHeadAttention
from llms_from_scratch.ch04 import GPTModel, LayerNorm, TransformerBlock


def layer_norm(norm: LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, norm.scale.shape, norm.scale, norm.shift, norm.eps)


def causal_attention(att: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    b, num_tokens, _ = x.shape
    # (b, num_tokens, d_out) -> (b, num_heads, num_tokens, head_dim)
    queries = att.W_query(x).view(b, num_tokens, att.num_heads, att.head_dim).transpose(1, 2)
    keys = att.W_key(x).view(b, num_tokens, att.num_heads, att.head_dim).transpose(1, 2)
    values = att.W_value(x).view(b, num_tokens, att.num_heads, att.head_dim).transpose(1, 2)
    dropout_p = att.dropout.p if att.training else 0.0
    context = F.scaled_dot_product_attention(queries, keys, values, dropout_p=dropout_p, is_causal=True)
    # (b, num_heads, num_tokens, head_dim) -> (b, num_tokens, d_out)
    return att.out_proj(context.transpose(1, 2).reshape(b, num_tokens, att.d_out))


def block_forward(block: TransformerBlock, x: torch.Tensor) -> torch.Tensor:
    x = x + block.drop_shortcut(causal_attention(block.att, layer_norm(block.norm1, x)))
    expand, _, contract = block.ff.layers  # Linear, GELU, Linear
    h = contract(F.gelu(expand(layer_norm(block.norm2, x)), approximate="tanh"))
    return x + block.drop_shortcut(h)


class FastGPTModel(GPTModel):
    """``GPTModel`` with fused kernels in ``forward``; see the module docstring."""

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        if in_idx.dim() != 2 or in_idx.shape[1] > self.pos_emb.num_embeddings:
            return super().forward(in_idx)  # the book's forward raises the helpful error
        seq_len = in_idx.shape[1]
        x = self.tok_emb(in_idx) + self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = self.drop_emb(x)
        for block in self.trf_blocks:
            x = block_forward(block, x)
        return self.out_head(layer_norm(self.final_norm, x))
