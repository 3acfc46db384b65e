"""A small causal transformer over sentence embeddings.

The sentence embeddings take the place of token embeddings: a linear layer maps each one to the model width, a
learned position embedding says which sentence of the review it is, and chapter 4's pre-norm blocks (the fused
causal attention of ``TransformerBlockFast``) mix the context. A final linear layer maps back to the embedding
space: the output at position t is the model's guess for sentence t + 1.

Reviews have different lengths; they are padded on the right. Causal attention lets a position see only itself
and earlier ones, so padding (always later) cannot change any real position's output, and the losses skip it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..ch04 import LayerNormFast, TransformerBlockFast


@dataclass(frozen=True)
class ConceptConfig:
    sentence_dim: int = 384  # width of the frozen sentence embeddings (MiniLM)
    emb_dim: int = 128  # width inside the transformer
    n_layers: int = 2
    n_heads: int = 4
    context_length: int = 128  # most sentences per review the position embedding covers
    drop_rate: float = 0.1


class ConceptModel(nn.Module):
    def __init__(self, cfg: ConceptConfig) -> None:
        super().__init__()
        self.cfg = cfg
        block_cfg = {"emb_dim": cfg.emb_dim, "n_heads": cfg.n_heads, "drop_rate": cfg.drop_rate,
                     "qkv_bias": False, "context_length": cfg.context_length}
        self.in_proj = nn.Linear(cfg.sentence_dim, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.Sequential(*(TransformerBlockFast(block_cfg) for _ in range(cfg.n_layers)))
        self.final_norm = LayerNormFast(cfg.emb_dim)
        self.out_proj = nn.Linear(cfg.emb_dim, cfg.sentence_dim)
        # unit-length sentence embeddings give in_proj outputs of about 0.03 per component; nn.Embedding's N(0, 1)
        # positions would drown them, so positions start at GPT-2's scale instead
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        # outputs of about unit length at the start (the targets have unit length), not the ~sqrt(emb_dim) the
        # default init gives, which would spend the first steps only shrinking them
        nn.init.normal_(self.out_proj.weight, std=1 / cfg.emb_dim)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """(batch, sentences, sentence_dim) -> predicted next-sentence embeddings of the same shape."""
        n = emb.shape[1]
        if n > self.cfg.context_length:
            raise ValueError(f"{n} sentences exceed context_length={self.cfg.context_length}; truncate the reviews "
                             "(pad_reviews(max_sentences=...)) or build the model with a longer context")
        x = self.in_proj(emb) + self.pos_emb(torch.arange(n, device=emb.device))  # (batch, n, emb_dim)
        x = self.trf_blocks(self.drop_emb(x))
        return self.out_proj(self.final_norm(x))


def pad_reviews(reviews: list[torch.Tensor], max_sentences: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack reviews of (n_i, dim) sentence embeddings into (batch, T, dim) with zeros on the right.

    Returns the padded batch and a (batch, T) bool mask that is True at real sentences. Reviews longer than
    ``max_sentences`` keep their first ``max_sentences`` sentences.
    """
    if not reviews:
        raise ValueError("pad_reviews needs at least one review")
    if max_sentences is not None:
        reviews = [r[:max_sentences] for r in reviews]
    width = max(len(r) for r in reviews)
    out = reviews[0].new_zeros(len(reviews), width, reviews[0].shape[-1])
    mask = torch.zeros(len(reviews), width, dtype=torch.bool, device=reviews[0].device)
    for i, r in enumerate(reviews):
        out[i, : len(r)] = r
        mask[i, : len(r)] = True
    return out, mask
