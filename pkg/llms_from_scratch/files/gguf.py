"""Opening GGUF files (llama.cpp's format) through the ``gguf`` package, one cached reader per file.

A GGUF file holds a model's architecture and tokenizer as metadata fields and its tensors; the model loader
(``models/gguf_file.py``) and the tokenizer reader (``tokenizers/families.py``) both open it, and share the reader.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

GGUF_MAGIC = b"GGUF"  # the first four bytes of every GGUF file


class GGUFFileError(ValueError):
    """A file that cannot be read as GGUF (not GGUF at all, truncated, damaged); the message names the file."""


def open_gguf(path: str | os.PathLike) -> Any:
    """A ``gguf.GGUFReader`` for ``path``, reused while the file is unchanged (same size and modification time).

    A missing file raises ``FileNotFoundError``; a file that is not GGUF, or is cut short, :class:`GGUFFileError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} does not exist: check the path, or give a downloadable model "
                                "name instead (`llms-from-scratch download` lists them)")
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
    with open(path, "rb") as f:
        magic = f.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        what = "is empty" if size == 0 else f"starts with {magic!r}, not {GGUF_MAGIC!r}"
        raise GGUFFileError(f"{path} is not a GGUF file (it {what}): pass a .gguf file such as llama.cpp's "
                            "converter writes")
    try:
        reader = gguf.GGUFReader(path)
    except OSError:
        raise  # the file could not be opened or mapped: the OS's message names it
    except Exception as exc:  # any failure to parse these bytes means a damaged file
        # the reader trips over a header, a metadata table or a tensor cut short with messages about numpy
        # views; what the user can act on is that the file is incomplete
        raise GGUFFileError(f"{path} ({size:,} bytes) is truncated or damaged: its GGUF tables cannot be read "
                            f"({type(exc).__name__}: {exc}); download the file again") from None
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise GGUFFileError(f"{path} is truncated: its tensors end at byte {end:,} but the file has {size:,} bytes; "
                            "download the file again")
    return reader


def gguf_field(reader: Any, key: str, default: Any = None) -> Any:
    """The value of metadata field ``key`` (e.g. ``"llama.block_count"``), or ``default`` when the file lacks it."""
    field = reader.fields.get(key)
    return default if field is None else field.contents()
