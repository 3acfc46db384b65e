"""Read tensors from a ``.safetensors`` file with plain file reads, each into memory the tensor owns.

``safetensors.safe_open`` maps the whole file into memory and hands out tensors that are views of that mapping.
A loader that keeps some of those views (tensors it need not transpose or convert) keeps the entire mapping
alive, and every page of the file that was read stays in the process's resident set next to the converted
copies: loading GPT-2 124M that way held 1.5 copies of its weights, and converting fp32 to bf16 peaked at 3.6
copies of the result. Reading each tensor into a fresh buffer keeps the resident set at the tensors that
are kept plus one tensor in flight; a dtype conversion goes through a small reusable buffer, chunk by chunk.

The format: 8 bytes (little-endian u64) giving the header's length, a JSON header mapping each name to its
``dtype``, ``shape`` and ``data_offsets`` (begin, end) relative to the end of the header, then the data.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "U16": torch.uint16,
    "I32": torch.int32, "U32": torch.uint32, "I64": torch.int64, "U64": torch.uint64, "F16": torch.float16,
    "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64, "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
CHUNK_BYTES = 16 * 2**20  # stored bytes converted per step when the dtype changes


class SafetensorsFile:
    """One open ``.safetensors`` file: ``keys()``, ``dtype(name)`` and ``get_tensor(name, dtype=None)``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 (closed by close() / the with block)
        try:
            self._entries, self._data_start = self._read_header()
        except Exception:
            self._file.close()
            raise

    def _read_header(self) -> tuple[dict[str, dict], int]:
        size = self.path.stat().st_size
        raw = self._file.read(8)
        if len(raw) < 8:
            raise ValueError(f"{self.path} is not a safetensors file (shorter than its 8-byte header length)")
        (n,) = struct.unpack("<Q", raw)
        if 8 + n > size:
            raise ValueError(f"{self.path} is truncated or not a safetensors file (header of {n} bytes claimed)")
        header = json.loads(self._file.read(n))
        header.pop("__metadata__", None)
        data_bytes = size - 8 - n
        for name, entry in header.items():
            begin, end = entry["data_offsets"]
            if entry["dtype"] not in DTYPES:
                raise ValueError(f"{self.path}: tensor {name!r} has dtype {entry['dtype']}, which this reader "
                                 f"does not support (supported: {', '.join(DTYPES)})")
            if not 0 <= begin <= end <= data_bytes:
                raise ValueError(f"{self.path} is truncated: tensor {name!r} ends at byte {end} of the data, which "
                                 f"holds {data_bytes} bytes. Download the file again.")
        return header, 8 + n

    def keys(self) -> list[str]:
        return list(self._entries)

    def dtype(self, name: str) -> torch.dtype:
        """The stored dtype of tensor ``name``."""
        return DTYPES[self._entry(name)["dtype"]]

    def _entry(self, name: str) -> dict:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"{self.path} holds no tensor named {name!r}") from None

    def get_tensor(self, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Tensor ``name`` in memory of its own, converted to ``dtype`` when given."""
        entry = self._entry(name)
        stored = DTYPES[entry["dtype"]]
        begin = entry["data_offsets"][0]
        out = torch.empty(entry["shape"], dtype=dtype or stored)
        if out.dtype == stored:
            self._read_into(out, begin)
            return out
        # convert through a small buffer so that no full-size copy in the stored dtype ever exists
        flat, step = out.view(-1), max(1, CHUNK_BYTES // stored.itemsize)
        buffer = torch.empty(min(step, flat.numel()), dtype=stored)
        for start in range(0, flat.numel(), step):
            part = buffer[: min(step, flat.numel() - start)]
            self._read_into(part, begin + start * stored.itemsize)
            flat[start : start + part.numel()].copy_(part)
        return out

    def _read_into(self, tensor: torch.Tensor, begin: int) -> None:
        """Fill contiguous ``tensor`` with its bytes, which start at data offset ``begin``."""
        if tensor.numel() == 0:
            return
        view = memoryview(tensor.reshape(-1).view(torch.uint8).numpy())
        self._file.seek(self._data_start + begin)
        filled = 0
        while filled < len(view):  # a single read may return fewer bytes than asked for
            got = self._file.readinto(view[filled:])
            if not got:
                raise ValueError(f"{self.path} ended early while reading; download the file again")
            filled += got

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
