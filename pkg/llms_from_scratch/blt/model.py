"""A small byte latent transformer: bytes -> patch vectors -> a transformer over patches -> bytes.

Three parts, after the BLT paper (Pagnoni et al. 2024), simplified:

1. **local encoder**: byte embeddings, byte positions and a few causal transformer blocks at a small width;
   the hidden states of each patch's bytes are averaged and projected to the latent width, one vector per patch;
2. **latent transformer**: causal blocks at a larger width over the patch vectors (plus patch positions); its
   output for patch ``j`` has seen patches ``0 .. j``;
3. **local decoder**: causal blocks over the bytes again. The input of byte position ``i`` is the encoder's
   hidden state plus the latent output of the last patch that is complete before the byte it predicts, and a
   linear head gives the logits of byte ``i + 1``.

Causality, in indices. Position ``i`` predicts byte ``i + 1``, which lies in patch ``k = patch_id[i + 1]``.
Position ``i`` reads the latent output of patch ``k - 1``: all of its bytes come no later than ``i`` (if
``k == patch_id[i]``, patch ``k - 1`` ended before ``i``; otherwise byte ``i + 1`` opens patch ``k`` and
``i`` is the last byte of patch ``k - 1``). Positions in the first patch read a learned start vector. So the
model needs the patch ids of ``T + 1`` bytes for ``T`` inputs; whether byte ``i + 1`` opens a patch is decided
from bytes up to ``i`` only (see :mod:`.patching`), so this leaks nothing.

The latent transformer is where the compute per *patch* goes; longer patches mean fewer latent steps per byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..ch04 import LayerNormFast, TransformerBlockFast


@dataclass(frozen=True)
class BLTConfig:
    vocab_size: int = 256
    context_length: int = 256  # bytes per training window (and most patches per window)
    local_dim: int = 64  # width of the local encoder and decoder
    local_heads: int = 2
    encoder_layers: int = 1
    decoder_layers: int = 1
    latent_dim: int = 192  # width of the latent transformer over patches
    latent_heads: int = 4
    latent_layers: int = 2
    drop_rate: float = 0.0


def _blocks(n_layers: int, emb_dim: int, n_heads: int, drop_rate: float) -> nn.Sequential:
    cfg = {"emb_dim": emb_dim, "n_heads": n_heads, "drop_rate": drop_rate, "qkv_bias": False}
    return nn.Sequential(*(TransformerBlockFast(cfg) for _ in range(n_layers)))


class ByteLatentTransformer(nn.Module):
    def __init__(self, cfg: BLTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.byte_emb = nn.Embedding(cfg.vocab_size, cfg.local_dim)
        self.byte_pos = nn.Embedding(cfg.context_length, cfg.local_dim)
        self.encoder = _blocks(cfg.encoder_layers, cfg.local_dim, cfg.local_heads, cfg.drop_rate)
        self.to_latent = nn.Linear(cfg.local_dim, cfg.latent_dim)
        self.patch_pos = nn.Embedding(cfg.context_length, cfg.latent_dim)
        self.latent = _blocks(cfg.latent_layers, cfg.latent_dim, cfg.latent_heads, cfg.drop_rate)
        self.latent_norm = LayerNormFast(cfg.latent_dim)
        self.start = nn.Parameter(torch.zeros(cfg.latent_dim))  # what positions in the first patch read
        self.from_latent = nn.Linear(cfg.latent_dim, cfg.local_dim)
        self.decoder = _blocks(cfg.decoder_layers, cfg.local_dim, cfg.local_heads, cfg.drop_rate)
        self.final_norm = LayerNormFast(cfg.local_dim)
        self.out_head = nn.Linear(cfg.local_dim, cfg.vocab_size, bias=False)
        for emb in (self.byte_pos, self.patch_pos):
            nn.init.normal_(emb.weight, std=0.02)

    def forward(self, idx: torch.Tensor, patch_id: torch.Tensor) -> torch.Tensor:
        """Byte ids (batch, T) and patch ids of T + 1 bytes (batch, T + 1) -> next-byte logits (batch, T, vocab).

        ``patch_id`` counts up from 0 in steps of 0 or 1 along each row (:func:`.patching.patch_ids`); its last
        column is the patch of the byte after the window, the one the last position predicts.
        """
        b, t = idx.shape
        if t > self.cfg.context_length:
            raise ValueError(f"the input has {t} bytes but context_length is {self.cfg.context_length}; "
                             "cut the stream into shorter windows")
        if patch_id.shape != (b, t + 1):
            raise ValueError(f"patch_id must have shape {(b, t + 1)} (one more byte than the input, the one the "
                             f"last position predicts), got {tuple(patch_id.shape)}")
        h = self.byte_emb(idx) + self.byte_pos(torch.arange(t, device=idx.device))
        h = self.encoder(h)  # (b, t, local_dim)

        # mean of each patch's byte states: scatter-add into (b, n_patches, local_dim), divide by the counts
        in_patch = patch_id[:, :t]
        n_patches = int(in_patch.max()) + 1
        sums = h.new_zeros(b, n_patches, h.shape[-1]).scatter_add_(1, in_patch.unsqueeze(-1).expand_as(h), h)
        counts = torch.zeros(b, n_patches, device=h.device).scatter_add_(
            1, in_patch, torch.ones(b, t, device=h.device))
        patches = sums / counts.clamp(min=1).unsqueeze(-1)  # empty (padding) patches stay zero; they come last
        z = self.to_latent(patches) + self.patch_pos(torch.arange(n_patches, device=idx.device))
        z = self.latent_norm(self.latent(z))  # (b, n_patches, latent_dim); row j has seen patches 0..j

        # shift by one patch: slot k holds the output of patch k - 1, slot 0 the start vector
        shifted = torch.cat([self.start.expand(b, 1, -1), z], dim=1)  # (b, n_patches + 1, latent_dim)
        read = shifted.gather(1, patch_id[:, 1:].unsqueeze(-1).expand(b, t, shifted.shape[-1]))  # (b, t, latent)
        x = self.decoder(h + self.from_latent(read))
        return self.out_head(self.final_norm(x))
