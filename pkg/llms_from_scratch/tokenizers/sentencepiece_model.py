"""Read a SentencePiece ``tokenizer.model`` file without the ``protobuf`` package.

The file is one serialized ``ModelProto`` message. Protocol Buffers store a message as a flat list of
fields, each introduced by a key ``(field_number << 3) | wire_type`` written as a varint (7 bits per byte,
low bits first, high bit set on every byte but the last). Only three wire types occur here:

* 0, varint: integers, booleans and enums;
* 2, length-delimited: a varint length, then that many bytes (strings, bytes, nested messages);
* 5, 32-bit: a little-endian float (a piece's score).

The fields this tokenizer needs (numbers from ``sentencepiece_model.proto``):

* ``ModelProto``: 1 = repeated ``SentencePiece``, 2 = ``TrainerSpec``, 3 = ``NormalizerSpec``;
* ``SentencePiece``: 1 = piece (text), 2 = score (float), 3 = type (1 normal, 2 unknown, 3 control,
  4 user-defined, 5 unused, 6 byte; normal when absent);
* ``TrainerSpec``: 3 = model type (1 unigram, 2 BPE), 24 = treat whitespace as suffix, 35 = byte fallback,
  45-48 = the unknown / BOS / EOS / padding piece names;
* ``NormalizerSpec``: 1 = rule name, 2 = precompiled character map, 3 = add dummy prefix,
  4 = remove extra whitespaces, 5 = escape whitespaces (the last three default to true).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM, BPE = 1, 2


@dataclass(frozen=True)
class SentencePieceModelFile:
    """What a ``tokenizer.model`` says: the pieces (index = id) with scores and types, and the options."""

    pieces: list[str]
    scores: list[float]
    types: list[int]
    model_type: int = UNIGRAM
    byte_fallback: bool = False
    treat_whitespace_as_suffix: bool = False
    unk_piece: str = "<unk>"
    bos_piece: str = "<s>"
    eos_piece: str = "</s>"
    pad_piece: str = "<pad>"
    normalizer_name: str = ""
    has_charsmap: bool = False
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes | float]]:
    """Yield ``(field_number, value)`` for every field of one message, in file order."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
            if pos > len(data):
                raise ValueError("truncated length-delimited field")
        elif wire_type == 5:
            (value,), pos = struct.unpack_from("<f", data, pos), pos + 4
        elif wire_type == 1:  # 64-bit: no field we read has it, skip it
            value, pos = data[pos : pos + 8], pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield number, value


def parse_sentencepiece_model(data: bytes) -> SentencePieceModelFile:
    pieces, scores, types = [], [], []
    options: dict = {}
    for number, value in _fields(data):
        if number == 1:
            piece, score, kind = "", 0.0, NORMAL
            for n, v in _fields(value):
                if n == 1:
                    piece = v.decode("utf-8")
                elif n == 2:
                    score = v
                elif n == 3:
                    kind = v
            pieces.append(piece)
            scores.append(score)
            types.append(kind)
        elif number == 2:
            for n, v in _fields(value):
                if n == 3:
                    options["model_type"] = v
                elif n == 24:
                    options["treat_whitespace_as_suffix"] = bool(v)
                elif n == 35:
                    options["byte_fallback"] = bool(v)
                elif n in (45, 46, 47, 48):
                    options[("unk_piece", "bos_piece", "eos_piece", "pad_piece")[n - 45]] = v.decode("utf-8")
        elif number == 3:
            for n, v in _fields(value):
                if n == 1:
                    options["normalizer_name"] = v.decode("utf-8")
                elif n == 2:
                    options["has_charsmap"] = len(v) > 0
                elif n in (3, 4, 5):
                    options[("add_dummy_prefix", "remove_extra_whitespaces", "escape_whitespaces")[n - 3]] = bool(v)
    if not pieces:
        raise ValueError("no pieces found: this is not a SentencePiece model file")
    return SentencePieceModelFile(pieces, scores, types, **options)


def read_sentencepiece_model(path: str | os.PathLike) -> SentencePieceModelFile:
    """Parse a SentencePiece ``.model`` file (see the module docstring for the format)."""
    data = Path(path).read_bytes()
    try:
        return parse_sentencepiece_model(data)
    except (ValueError, UnicodeDecodeError, struct.error, AttributeError) as exc:
        raise ValueError(f"{path} is not a readable SentencePiece model ({exc}); expected the tokenizer.model "
                         "file of a Llama 2 / Mistral checkpoint") from None
