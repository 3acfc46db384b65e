"""Read TensorFlow checkpoints (the "tensor bundle" format of ``tf.train.Saver``) without TensorFlow.

OpenAI released GPT-2 as such a checkpoint. Its prefix (``model.ckpt``) names two files:

- ``model.ckpt.index``: a sorted string table in LevelDB's format. Data blocks of prefix-compressed
  key/value entries, each block followed by a compression byte and a masked CRC32C; an index block whose values
  point at the data blocks; a 48-byte footer pointing at the index block and ending in a magic number. The key
  ``""`` holds a ``BundleHeaderProto`` (number of data files, byte order); every other key is a tensor name whose
  value is a ``BundleEntryProto``: dtype, shape, data file, offset, size and the CRC32C of the bytes.
- ``model.ckpt.data-00000-of-00001``: the tensors' raw bytes, one after another.

:func:`read_tf_checkpoint` returns ``{name: numpy array}``. It checks the footer's magic number and every table
block's checksum, and that each tensor's bytes fit its shape and its data file. The tensors' own CRC32Cs are
not recomputed: in pure Python that would take minutes for the larger GPT-2 files.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

_TABLE_MAGIC = 0xDB4775248B80FB57  # LevelDB's table magic number, which TensorFlow's tables share
_FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the 8-byte magic number
_BLOCK_TRAILER = 5  # after every block: 1 byte of compression type, 4 bytes of masked CRC32C

# TensorFlow's DataType enum -> numpy dtype, little-endian (the numeric types a checkpoint can hold as raw bytes)
DTYPES = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("?"), 17: np.dtype("<u2"), 19: np.dtype("<f2"),
    22: np.dtype("<u4"), 23: np.dtype("<u8"),
}


class TFCheckpointError(ValueError):
    """The files are not a TensorFlow checkpoint this reader understands, or they are damaged."""


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # Castagnoli polynomial, bit-reversed
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum LevelDB and TensorFlow use."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """The stored form of a CRC: rotated and offset, so a CRC of data that itself holds CRCs stays distinctive."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise TFCheckpointError("truncated varint in the checkpoint index")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a protobuf message: varints as ints, length-delimited as bytes."""
    fields, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise TFCheckpointError(f"unsupported protobuf wire type {wire} in the checkpoint index")
        fields.append((number, value))
    return fields


def _block(data: bytes, handle: bytes, what: str) -> bytes:
    """The contents of the block a handle (varint offset, varint size) points at, after checking its trailer."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    end = offset + size
    if end + _BLOCK_TRAILER > len(data):
        raise TFCheckpointError(f"the {what} block runs past the end of the index file (truncated download?)")
    contents, kind = data[offset:end], data[end]
    stored = struct.unpack_from("<I", data, end + 1)[0]
    if mask_crc(crc32c(data[offset:end + 1])) != stored:  # the checksum covers the type byte too
        raise TFCheckpointError(f"the {what} block at byte {offset} fails its checksum (damaged file)")
    if kind != 0:
        raise TFCheckpointError(f"the {what} block is compressed (type {kind}); only uncompressed tables are read")
    return contents


def _entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """The key/value pairs of a block. Each key stores only what differs from the previous key."""
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts  # the restart offsets only speed up seeking; a scan skips them
    out, pos, key = [], 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + value_len]))
        pos += value_len
    return out


def _read_table(path: Path) -> dict[bytes, bytes]:
    data = path.read_bytes()
    if len(data) < _FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
        raise TFCheckpointError(f"{path} is not a TensorFlow checkpoint index (no table magic number at its end)")
    footer = data[-_FOOTER_SIZE:]
    _, pos = _varint(footer, _varint(footer, 0)[1])  # skip the metaindex handle: no filters in checkpoints
    index_handle = footer[pos:]
    table = {}
    for _, handle in _entries(_block(data, index_handle, "index")):
        table.update(_entries(_block(data, handle, "data")))
    return table


def checkpoint_prefix(path: str | os.PathLike) -> Path:
    """The checkpoint prefix for ``path``: a prefix, its ``.index`` file, or a folder holding one checkpoint."""
    path = Path(path)
    if path.suffix == ".index":
        return path.with_suffix("")
    if path.is_dir():
        found = sorted(path.glob("*.index"))
        if len(found) != 1:
            raise TFCheckpointError(f"{path} holds {len(found)} checkpoint index files; pass the prefix of one")
        return found[0].with_suffix("")
    return path


def read_tf_checkpoint(ckpt_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a TensorFlow checkpoint as numpy arrays, keyed by their variable names."""
    prefix = checkpoint_prefix(ckpt_path)
    index = Path(f"{prefix}.index")
    if not index.is_file():
        raise FileNotFoundError(f"no checkpoint index at {index}; pass the prefix, e.g. 'gpt2/124M/model.ckpt'")
    table = _read_table(index)
    header = dict(_proto_fields(table.pop(b"", b"")))
    if header.get(2, 0) != 0:
        raise TFCheckpointError(f"{index} was written on a big-endian machine; only little-endian data is read")
    num_shards = header.get(1, 1)
    tensors = {}
    for key, value in table.items():
        name, fields = key.decode("utf-8"), _proto_fields(value)
        entry = dict(fields)
        if 7 in entry:
            raise TFCheckpointError(f"{name} is stored in slices (a partitioned variable), which this reader skips")
        dtype = DTYPES.get(entry.get(1, 0))
        if dtype is None:
            raise TFCheckpointError(f"{name} has TensorFlow dtype {entry.get(1, 0)}, not a plain numeric type")
        # TensorShapeProto: one "dim" message (field 2) per dimension, its size in field 1
        shape = tuple(dict(_proto_fields(dim)).get(1, 0) for number, dim in _proto_fields(entry.get(2, b""))
                      if number == 2)
        offset, size = entry.get(4, 0), entry.get(5, 0)
        count = int(np.prod(shape, dtype=np.int64))
        if size != count * dtype.itemsize:
            raise TFCheckpointError(f"{name}: {size} bytes stored for shape {shape} of {dtype} ({count} values)")
        data_file = Path(f"{prefix}.data-{entry.get(3, 0):05d}-of-{num_shards:05d}")
        if not data_file.is_file() or data_file.stat().st_size < offset + size:
            raise TFCheckpointError(f"{name}: {data_file} is missing or shorter than {offset + size} bytes")
        with open(data_file, "rb") as f:
            f.seek(offset)
            tensors[name] = np.fromfile(f, dtype=dtype, count=count).reshape(shape)
    return tensors
