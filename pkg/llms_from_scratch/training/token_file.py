"""A corpus tokenized once into a flat file of uint16 token ids, read through a memory map.

GPT-2's vocabulary (50,257 ids) fits in 16 bits, so a token costs two bytes on disk. Training opens the file as
a ``numpy.memmap``: the operating system pages in only the windows a batch touches, so memory use stays flat
however large the corpus is. Documents are separated by ``<|endoftext|>`` so the model learns where texts end.

Beside ``tokens.bin`` lies ``tokens.json``, the record of what it was made from: every corpus file (path, size,
modification time, SHA-256; see :mod:`.corpus`), the tokenizer and the number of tokens. :func:`prepare_token_file`
reuses a token file only while its record still describes the corpus and the tokenizer and builds it again
otherwise, so a run pointed at other text never trains on the tokens of the text before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import atomic_path
from .corpus import corpus_changes, corpus_files, file_entry, read_corpus_text, summarize

__all__ = ["TokenWindows", "build_token_file", "corpus_files", "prepare_token_file", "record_path",
           "source_differences", "tokenizer_record"]

_MAX_UINT16 = 2**16 - 1
RECORD_FORMAT = "llms-from-scratch-tokens"
RECORD_VERSION = 1
_RECORD_KEYS = {"source", "files", "tokenizer", "n_tokens"}


def record_path(token_path: str | Path) -> Path:
    """Where the record of a token file lies: ``tokens.bin`` -> ``tokens.json``."""
    return Path(token_path).with_suffix(".json")


def tokenizer_record(tokenizer) -> dict[str, Any]:
    """What identifies a tokenizer in a record: its name and vocabulary size."""
    return {"name": getattr(tokenizer, "name", type(tokenizer).__name__), "n_vocab": int(tokenizer.n_vocab)}


def _encode_stream(files: list[Path], tokenizer, entries: list[dict[str, Any]]) -> Iterator[np.ndarray]:
    eot = tokenizer.eot_token if hasattr(tokenizer, "eot_token") else None
    for path, entry in zip(files, entries):
        text, entry["sha256"] = read_corpus_text(path)
        ids = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
        if eot is not None:
            ids.append(eot)  # mark the document boundary
        array = np.asarray(ids, dtype=np.int64)
        if array.size and array.max() > _MAX_UINT16:
            raise ValueError(f"{path}: token id {array.max()} does not fit in uint16; this file format needs a "
                             "vocabulary of at most 65,536 tokens")
        yield array.astype(np.uint16)


def _write_tokens(source: str | Path, out_path: Path, tokenizer) -> dict[str, Any]:
    """Tokenize the corpus into ``out_path`` and return the record that describes the result."""
    files = corpus_files(source)
    # sizes and times are taken before the bytes are read: a file edited meanwhile then differs from its record
    entries = [file_entry(path, source) for path in files]
    n_tokens = 0
    with atomic_path(out_path) as tmp, open(tmp, "wb") as f:
        for array in _encode_stream(files, tokenizer, entries):
            f.write(array.tobytes())
            n_tokens += array.size
    return {"format": RECORD_FORMAT, "version": RECORD_VERSION, "source": str(Path(source).resolve()),
            "files": entries, "tokenizer": tokenizer_record(tokenizer), "n_tokens": n_tokens}


def build_token_file(source: str | Path, out_path: str | Path, tokenizer) -> Path:
    """Tokenize a text file or a folder of ``.txt`` files into ``out_path`` (uint16), one file at a time.

    Only one document's tokens are held in memory at once; the result is written beside ``out_path`` and
    renamed into place, so an interrupted run never leaves a half-written token file behind. A file that is not
    UTF-8 stops the build with an error naming the file and the offset of the first bad byte.
    """
    out_path = Path(out_path)
    _write_tokens(source, out_path, tokenizer)
    return out_path


def source_differences(record: dict[str, Any], source: str | Path, tokenizer) -> str | None:
    """Why the corpus at ``source`` and ``tokenizer`` are not what ``record`` describes; None when they are."""
    if record.get("tokenizer") != tokenizer_record(tokenizer):
        old, new = record.get("tokenizer") or {}, tokenizer_record(tokenizer)
        return f"the tokenizer was {old.get('name')} ({old.get('n_vocab')} tokens), now {new['name']} " \
               f"({new['n_vocab']} tokens)"
    changes = corpus_changes(record["files"], source)
    if not changes:
        return None  # the same files, possibly moved to another folder
    root = str(Path(source).resolve())
    where = f"the corpus was {record['source']}, now {root}: " if record["source"] != root else "the corpus changed: "
    return where + summarize(changes)


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or record.get("version") != RECORD_VERSION:
        return None
    return record if _RECORD_KEYS <= record.keys() else None


def _why_rebuild(out_path: Path, source: str | Path, tokenizer) -> str | None:
    if not out_path.is_file():
        return "there is no token file yet"
    record = _read_record(record_path(out_path))
    if record is None:
        return f"it has no readable record of its source ({record_path(out_path).name})"
    if out_path.stat().st_size != 2 * record["n_tokens"]:
        return f"it does not hold the {record['n_tokens']:,} tokens its record names"
    return source_differences(record, source, tokenizer)


def prepare_token_file(source: str | Path, out_path: str | Path, tokenizer) -> tuple[dict[str, Any], str | None]:
    """Reuse ``out_path`` if its record matches the corpus and the tokenizer, otherwise (re)build it.

    Returns the record and, when the file was (re)built, why; ``None`` when it was reused.
    """
    out_path = Path(out_path)
    why = _why_rebuild(out_path, source, tokenizer)
    if why is None:
        return _read_record(record_path(out_path)), None
    # the old record goes first: a token file without a record is never trusted, whatever stops this build
    record_path(out_path).unlink(missing_ok=True)
    record = _write_tokens(source, out_path, tokenizer)
    with atomic_path(record_path(out_path)) as tmp:
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record, why


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
