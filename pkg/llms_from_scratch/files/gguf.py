"""Opening GGUF files (llama.cpp's format) through the ``gguf`` package, one cached reader per file.

A GGUF file holds a model's architecture and tokenizer as metadata fields and its tensors; the model loader
(``models/gguf_file.py``) and the tokenizer reader (``tokenizers/families.py``) both open it, and share the reader.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any


def open_gguf(path: str | os.PathLike) -> Any:
    """A ``gguf.GGUFReader`` for ``path``, reused while the file is unchanged (same size and modification time)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} does not exist")
    stat = path.stat()
    return cached_reader(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=2)
def cached_reader(path: str, mtime_ns: int, size: int) -> Any:
    """The reader behind :func:`open_gguf`, keyed by the file's identity (``cache_info()`` shows how many are held)."""
    # parsing the metadata of a GGUF file takes seconds (one numpy view per token string); the model and
    # the tokenizer read the same file, so they share one reader
    try:
        import gguf
    except ImportError:
        raise ImportError("reading GGUF files needs the 'gguf' package: pip install gguf") from None
    return gguf.GGUFReader(path)


def gguf_field(reader: Any, key: str, default: Any = None) -> Any:
    """The value of metadata field ``key`` (e.g. ``"llama.block_count"``), or ``default`` when the file lacks it."""
    field = reader.fields.get(key)
    return default if field is None else field.contents()
