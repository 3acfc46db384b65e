"""Small GGUF files for the error tests: a valid one with one tensor, and copies of it cut short."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_small_gguf(path: Path) -> Path:
    """A valid GGUF file (llama architecture, a few metadata fields, one 64 x 64 float32 tensor): 16 KiB."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_tensor("token_embd.weight", np.arange(64 * 64, dtype=np.float32).reshape(64, 64))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def truncated_copy(source: Path, dest: Path, n_bytes: int) -> Path:
    """The first ``n_bytes`` of ``source``, written to ``dest`` (a download cut short)."""
    dest.write_bytes(source.read_bytes()[:n_bytes])
    return dest
