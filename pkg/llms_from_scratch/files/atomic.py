"""Atomic file writes: the file appears whole, or the old one stays.

>>> with atomic_path("out/model.safetensors") as tmp:
...     save_file(tensors, tmp)                 # any writer that takes a path

The body writes to a temporary file beside the target (same folder, so the same file system); when it finishes
without an exception the bytes are flushed to disk and the temporary file is renamed over the target in one
step (``os.replace``: atomic on POSIX and Windows), so readers see the old file or the new one, never a part.
If the body raises, the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` (parent folders are created)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the leading dot hides the partial file from folder listings and globs such as *.safetensors
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
