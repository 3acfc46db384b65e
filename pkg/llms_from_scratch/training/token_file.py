"""A corpus tokenized once into a flat file of uint16 token ids, read through a memory map.

GPT-2's vocabulary (50,257 ids) fits in 16 bits, so a token costs two bytes on disk. Training opens the file as
a ``numpy.memmap``: the operating system pages in only the windows a batch touches, so memory use stays flat
however large the corpus is. Documents are separated by ``<|endoftext|>`` so the model learns where texts end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_path

__all__ = ["TokenWindows", "build_token_file", "corpus_files"]

_MAX_UINT16 = 2**16 - 1


def corpus_files(source: str | Path) -> list[Path]:
    """The text files of a corpus: ``source`` itself, or every ``*.txt`` below the folder, in sorted order."""
    source = Path(source)
    if source.is_file():
        return [source]
    if source.is_dir():
        files = sorted(p for p in source.rglob("*.txt") if p.is_file())
        if not files:
            raise FileNotFoundError(f"no .txt files below {source}; put the training text in .txt files")
        return files
    raise FileNotFoundError(f"{source} is neither a text file nor a folder")


def _encode_stream(files: list[Path], tokenizer) -> Iterator[np.ndarray]:
    eot = tokenizer.eot_token if hasattr(tokenizer, "eot_token") else None
    for path in files:
        ids = tokenizer.encode(path.read_text(encoding="utf-8"), allowed_special={"<|endoftext|>"})
        if eot is not None:
            ids.append(eot)  # mark the document boundary
        array = np.asarray(ids, dtype=np.int64)
        if array.size and array.max() > _MAX_UINT16:
            raise ValueError(f"{path}: token id {array.max()} does not fit in uint16; this file format needs a "
                             "vocabulary of at most 65,536 tokens")
        yield array.astype(np.uint16)


def build_token_file(source: str | Path, out_path: str | Path, tokenizer) -> Path:
    """Tokenize a text file or a folder of ``.txt`` files into ``out_path`` (uint16), one file at a time.

    Only one document's tokens are held in memory at once; the result is written beside ``out_path`` and
    renamed into place, so an interrupted run never leaves a half-written token file behind.
    """
    files = corpus_files(source)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        for array in _encode_stream(files, tokenizer):
            f.write(array.tobytes())
    return out_path


class TokenWindows:
    """Random ``(input, target)`` windows from a token file, drawn with the class's own random generator.

    The generator's state is the data position: :meth:`state_dict` / :meth:`load_state_dict` save and restore
    it, so a resumed run draws exactly the windows an uninterrupted run would have drawn. ``split`` selects the
    first ``1 - val_fraction`` of the tokens ("train") or the rest ("val").
    """

    def __init__(self, path: str | Path, context_length: int, batch_size: int, split: str = "train",
                 val_fraction: float = 0.1, seed: int = 0):
        tokens = np.memmap(path, dtype=np.uint16, mode="r")
        cut = int(len(tokens) * (1 - val_fraction))
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.tokens = tokens[:cut] if split == "train" else tokens[cut:]
        self.context_length = context_length
        self.batch_size = batch_size
        if len(self.tokens) < context_length + 1:
            raise ValueError(
                f"the {split} split of {path} holds {len(self.tokens):,} tokens, fewer than context_length + 1 = "
                f"{context_length + 1}; use more text, a shorter --context-length or a different --val-fraction"
            )
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        """How many non-overlapping windows the split holds (the length of one epoch, in windows)."""
        return (len(self.tokens) - 1) // self.context_length

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of random windows: inputs and the same windows shifted by one token, both (batch, context)."""
        high = len(self.tokens) - self.context_length  # a window plus its one-token-shifted target must fit
        starts = torch.randint(0, high, (self.batch_size,), generator=self.generator).tolist()
        rows = np.stack([self.tokens[s : s + self.context_length + 1] for s in starts]).astype(np.int64)
        batch = torch.from_numpy(rows)  # (batch, context_length + 1)
        return batch[:, :-1], batch[:, 1:]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
