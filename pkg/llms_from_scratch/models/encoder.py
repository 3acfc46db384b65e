"""A BERT-style encoder: bidirectional attention, post-norm blocks, and a masked-language-model head.

Differences from the decoder: every token sees every other (non-padding) token; each sub-layer's residual
sum is normalized *after* the addition (post-norm); the embedding adds a segment ("token type") table and
is normalized too; the MLM head transforms the hidden state once more before the tied output projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import build_attention_mask
from .blocks import make_attention, make_ffn, make_norm
from .config import ModelConfig


class EncoderBlock(nn.Module):
    """Post-norm block: ``norm1(x + att(x))``, then ``norm2(x + ff(x))``."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.att = make_attention(cfg, layer)
        self.norm1 = make_norm(cfg)
        self.ff = make_ffn(cfg)
        self.norm2 = make_norm(cfg)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop_shortcut(self.att(x, mask)))
        return self.norm2(x + self.drop_shortcut(self.ff(x)))


class EncoderMLM(nn.Module):
    def __init__(self, cfg: ModelConfig, *, mlm_head: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.type_emb = nn.Embedding(max(cfg.type_vocab_size, 1), cfg.emb_dim)
        self.emb_norm = make_norm(cfg)
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.ModuleList(EncoderBlock(cfg, i) for i in range(cfg.n_layers))
        self.has_mlm_head = mlm_head
        if mlm_head:
            self.mlm_dense = nn.Linear(cfg.emb_dim, cfg.emb_dim)
            self.mlm_norm = make_norm(cfg)
            self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=True)
        self.tie_weights()

    def tie_weights(self) -> None:
        if self.has_mlm_head and self.cfg.tie_embeddings:
            self.out_head.weight = self.tok_emb.weight

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final hidden states (batch, tokens, emb_dim)."""
        b, t = input_ids.shape
        if t > self.cfg.context_length:
            raise ValueError(f"{t} tokens exceed the encoder's {self.cfg.context_length} positions")
        if attention_mask is None:
            attention_mask = torch.ones(b, t, dtype=torch.bool, device=input_ids.device)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(t, device=input_ids.device)
        x = self.tok_emb(input_ids) + self.type_emb(token_type_ids) + self.pos_emb(positions)
        x = self.drop_emb(self.emb_norm(x))
        mask = build_attention_mask(t, attention_mask.bool(), causal=False)
        for block in self.trf_blocks:
            x = block(x, mask)
        return x

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Masked-LM logits (batch, tokens, vocab_size)."""
        if not self.has_mlm_head:
            raise ValueError("this encoder was loaded without an MLM head; call encode() for hidden states")
        h = self.encode(input_ids, attention_mask, token_type_ids)
        h = self.mlm_norm(F.gelu(self.mlm_dense(h)))
        return self.out_head(h)
