"""Chapter 4: a GPT model from its building blocks, and greedy text generation.

``GPTModel(GPT_CONFIG_124M)`` has the architecture of the smallest GPT-2 (124M parameters when the output head
shares the token-embedding matrix; this implementation keeps them separate, so it holds 163,009,536 parameters).
The blocks are pre-LayerNorm transformer blocks: normalise, transform, add the shortcut.

``GPTModelFast`` (a bonus) is the same model built from PyTorch's fused operations; it has ``GPTModel``'s
parameter names, so one state dict loads into both.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from llms_from_scratch.ch03 import MultiHeadAttention, PyTorchMultiHeadAttention

__all__ = [
    "GPT_CONFIG_124M",
    "LayerNorm",
    "GELU",
    "FeedForward",
    "TransformerBlock",
    "GPTModel",
    "generate_text_simple",
    "LayerNormFast",
    "FeedForwardFast",
    "TransformerBlockFast",
    "GPTModelFast",
]

GPT_CONFIG_124M: dict[str, Any] = {
    "vocab_size": 50257,  # GPT-2's BPE vocabulary (tiktoken "gpt2")
    "context_length": 1024,  # longest input the positional embedding covers
    "emb_dim": 768,  # width of every token vector
    "n_heads": 12,  # attention heads per block (head_dim = 768 / 12 = 64)
    "n_layers": 12,  # transformer blocks
    "drop_rate": 0.1,  # dropout after embeddings, in attention and on the shortcut branches
    "qkv_bias": False,  # GPT-2 has query/key/value biases; chapter 5 turns them on to load its weights
}


class LayerNorm(nn.Module):
    """Normalise each token vector to mean 0 and variance 1, then scale and shift with trained parameters."""

    def __init__(self, emb_dim: int):
        super().__init__()
        self.eps = 1e-5  # keeps the division finite for a constant vector
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        # the biased variance (divide by n), as GPT-2 and torch.nn.LayerNorm use
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        norm_x = (x - mean) / torch.sqrt(var + self.eps)
        return self.scale * norm_x + self.shift


class GELU(nn.Module):
    """GELU activation in the tanh approximation GPT-2 was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh(torch.sqrt(torch.tensor(2.0 / torch.pi)) * (x + 0.044715 * torch.pow(x, 3))))


class FeedForward(nn.Module):
    """Position-wise MLP: widen to 4 x emb_dim, apply GELU, project back."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: ``x + drop(att(norm1(x)))``, then ``x + drop(ff(norm2(x)))``."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        x = self.att(x)  # (batch, num_tokens, emb_dim)
        x = self.drop_shortcut(x)
        x = x + shortcut  # the shortcut gives gradients a path around the sub-layer

        shortcut = x
        x = self.norm2(x)
        x = self.ff(x)
        x = self.drop_shortcut(x)
        x = x + shortcut
        return x


class GPTModel(nn.Module):
    """Token + position embeddings, ``n_layers`` transformer blocks, a final LayerNorm and a linear output head."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        """Map token ids ``(batch, num_tokens)`` to next-token logits ``(batch, num_tokens, vocab_size)``."""
        if in_idx.dim() != 2:
            raise ValueError(
                f"expected token ids of shape (batch, num_tokens), got shape {tuple(in_idx.shape)}; "
                f"add a batch dimension with in_idx.unsqueeze(0)"
            )
        batch_size, seq_len = in_idx.shape
        context_length = self.pos_emb.num_embeddings
        if seq_len > context_length:
            raise ValueError(
                f"the input has {seq_len} tokens but the model's context_length is {context_length}; "
                f"keep only the last {context_length} tokens (e.g. in_idx[:, -{context_length}:])"
            )
        tok_embeds = self.tok_emb(in_idx)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))  # (seq_len, emb_dim)
        x = tok_embeds + pos_embeds  # broadcasts over the batch: (batch, seq_len, emb_dim)
        x = self.drop_emb(x)
        x = self.trf_blocks(x)
        x = self.final_norm(x)
        return self.out_head(x)


def generate_text_simple(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int) -> torch.Tensor:
    """Append ``max_new_tokens`` greedily chosen tokens to ``idx`` (batch, num_tokens) and return the result.

    At each step the model sees at most the last ``context_size`` tokens, so the sequence may grow beyond the
    model's context length. Call ``model.eval()`` first, or dropout makes the choice random.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if context_size < 1:
        raise ValueError(f"context_size must be >= 1, got {context_size}")
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]  # crop to the supported context
        with torch.no_grad():
            logits = model(idx_cond)
        logits = logits[:, -1, :]  # only the last position predicts the next token: (batch, vocab_size)
        idx_next = torch.argmax(logits, dim=-1, keepdim=True)  # (batch, 1); softmax would not change the argmax
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


# ---------------------------------------------------------------------------------------------------------- bonus
# The same GPT from PyTorch's fused building blocks: faster on GPUs (fewer, larger kernels; flash attention),
# equal to GPTModel up to float rounding. Parameter names follow GPTModel, so state dicts move between the two.


class LayerNormFast(nn.Module):
    """PyTorch's layer norm (``F.layer_norm``, the kernel behind ``nn.LayerNorm``) under the names ``scale``/``shift``.

    ``nn.LayerNorm`` calls its parameters ``weight`` and ``bias``; keeping the chapter's names is what lets a
    ``GPTModel`` state dict load into ``GPTModelFast`` unchanged.
    """

    def __init__(self, emb_dim: int):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class FeedForwardFast(nn.Module):
    """``FeedForward`` with PyTorch's ``nn.GELU(approximate="tanh")``, the same tanh approximation as ``GELU``."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlockFast(nn.Module):
    """``TransformerBlock`` with SDPA attention, ``LayerNormFast`` and ``FeedForwardFast``."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.att = PyTorchMultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForwardFast(cfg)
        self.norm1 = LayerNormFast(cfg["emb_dim"])
        self.norm2 = LayerNormFast(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


class GPTModelFast(nn.Module):
    """``GPTModel`` built from ``TransformerBlockFast`` blocks; same parameters, same outputs up to rounding.

    Modules are created in ``GPTModel``'s order, so the same seed gives the same initial weights. The fused
    attention needs no causal-mask buffer; so that ``GPTModel`` can still load this model's state dict, the
    state dict carries the chapter's masks (built when the state dict is taken, not kept in memory).
    """

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlockFast(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNormFast(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        self.register_state_dict_post_hook(_add_chapter_masks)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        """Map token ids ``(batch, num_tokens)`` to next-token logits ``(batch, num_tokens, vocab_size)``."""
        batch_size, seq_len = in_idx.shape
        context_length = self.pos_emb.num_embeddings
        if seq_len > context_length:
            raise ValueError(
                f"the input has {seq_len} tokens but the model's context_length is {context_length}; "
                f"keep only the last {context_length} tokens (e.g. in_idx[:, -{context_length}:])"
            )
        x = self.tok_emb(in_idx) + self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = self.drop_emb(x)
        x = self.trf_blocks(x)
        x = self.final_norm(x)
        return self.out_head(x)


def _add_chapter_masks(model: GPTModelFast, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """Add the ``att.mask`` buffers that ``GPTModel``'s attention layers expect (each its own tensor)."""
    n = model.pos_emb.num_embeddings
    for i in range(len(model.trf_blocks)):
        state_dict[f"{prefix}trf_blocks.{i}.att.mask"] = torch.triu(
            torch.ones(n, n, device=model.pos_emb.weight.device), diagonal=1
        )
