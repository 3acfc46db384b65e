"""Compute the frozen lower blocks of a decoder once, then fine-tune the top blocks on the stored hidden states.

Chapter 6 trains only the last transformer block, the final norm and a new head; appendix E adds LoRA to the top
blocks only. The blocks below stay frozen, so they turn each message into the same hidden states in every epoch.
Storing those hidden states once and running just the top of the model during training gives the same losses and
gradients as running the whole model each step, at a fraction of the cost.

Both notebooks of this folder that fine-tune SmolLM2 for classification use this module; the models are the model
zoo's ``DecoderLM`` (book names: ``trf_blocks``, ``final_norm``, ``out_head``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from llms_from_scratch.nn import build_attention_mask


def _check_top(model: nn.Module, n_top: int) -> int:
    n_blocks = len(model.trf_blocks)
    if not 1 <= n_top <= n_blocks:
        raise ValueError(f"n_top must be between 1 and the model's {n_blocks} blocks, got {n_top}")
    if any(block.att.sliding_window is not None for block in model.trf_blocks):
        raise ValueError("sliding-window models need a window mask here; use a model without sliding windows")
    return n_blocks - n_top


@torch.no_grad()
def trunk_features(model: nn.Module, token_lists: list[list[int]], n_top: int,
                   batch_size: int = 16) -> list[torch.Tensor]:
    """The hidden states that enter the top ``n_top`` blocks: one (num_tokens, emb_dim) tensor per token list."""
    n_frozen = _check_top(model, n_top)
    model.eval()
    device = model.tok_emb.weight.device
    features: list[torch.Tensor | None] = [None] * len(token_lists)
    # similar lengths in one batch keep the padding (wasted work) small
    order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        longest = max(len(token_lists[i]) for i in rows)
        ids = torch.zeros(len(rows), longest, dtype=torch.long, device=device)
        for r, i in enumerate(rows):
            ids[r, :len(token_lists[i])] = torch.tensor(token_lists[i], device=device)
        # right padding: under the causal mask no real token sees the padding after it, so its hidden state is
        # exactly the one it gets without padding
        positions = torch.arange(longest, device=device).expand(len(rows), -1)  # (batch, tokens)
        x = model.tok_emb(ids)  # (batch, tokens, emb_dim)
        if model.pos_emb is not None:
            x = x + model.pos_emb(positions)
        rope = model.rope(positions, x.dtype) if model.rope is not None else None
        for block in model.trf_blocks[:n_frozen]:
            x = block(x, None, rope, None)  # no mask: plain causal attention
        for r, i in enumerate(rows):
            features[i] = x[r, :len(token_lists[i])].clone()
    return features


class TopOfModel(nn.Module):
    """The top ``n_top`` blocks, final norm and output head of ``model`` (the same modules, not copies).

    Input: stored hidden states (batch, tokens, emb_dim), left-padded with zero vectors (:func:`collate_left_pad`);
    output: logits (batch, tokens, out_features). With left padding the last position is every message's last real
    token, the position chapter 6 reads the class from, so the book's ``calc_loss_batch``, ``calc_accuracy_loader``
    and ``train_classifier_simple`` work unchanged. Training it trains ``model`` itself.
    """

    def __init__(self, model: nn.Module, n_top: int) -> None:
        super().__init__()
        _check_top(model, n_top)
        if model.rope is None:
            raise ValueError("TopOfModel needs a RoPE model: left padding would shift learned position embeddings")
        self.model = model
        self.n_top = n_top

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        model = self.model
        # a real hidden state is never exactly the zero vector, so the zero rows are the padding
        valid = x.ne(0).any(dim=-1)  # (batch, tokens)
        # positions count real tokens only, so left padding does not shift them (as DecoderLM does)
        positions = (valid.long().cumsum(dim=-1) - 1).clamp(min=0)
        rope = model.rope(positions, x.dtype)
        mask = None if bool(valid.all()) else build_attention_mask(x.shape[1], valid)
        for block in model.trf_blocks[-self.n_top:]:
            x = block(x, mask, rope, None)
        return model.out_head(model.final_norm(x))


class FeatureDataset(Dataset):
    """Stored hidden states with their class labels."""

    def __init__(self, features: list[torch.Tensor], labels: list[int]) -> None:
        if len(features) != len(labels):
            raise ValueError(f"{len(features)} feature tensors but {len(labels)} labels")
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.features[index], self.labels[index]


def collate_left_pad(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (tokens, emb_dim) tensors into (batch, longest, emb_dim), zero vectors in front of the shorter ones."""
    longest = max(f.shape[0] for f, _ in batch)
    emb_dim = batch[0][0].shape[1]
    x = torch.zeros(len(batch), longest, emb_dim, dtype=batch[0][0].dtype)
    for r, (f, _) in enumerate(batch):
        x[r, longest - f.shape[0]:] = f
    return x, torch.tensor([label for _, label in batch], dtype=torch.long)
