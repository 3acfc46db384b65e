"""Which tokenizer a Hugging Face checkpoint folder needs, decided from the files in it.

:func:`folder_tokenizer` applies these rules in order:

1. ``qwen.tiktoken`` (Qwen1): :func:`~.qwen1.qwen1_tokenizer`. The -Chat repositories say
   ``"chat_format": "chatml"`` in ``generation_config.json`` and get the ChatML format; ``"raw"`` (the base
   repositories) or no such file means a base model without a chat format.
2. ``tokenizer.json``: :func:`tokenizer_json_tokenizer`, which hands the file to the reader registered for
   its layout in :data:`TOKENIZER_JSON_READERS` (:func:`tokenizer_json_kind` names the layout): byte-level
   BPE (GPT-2, Llama 3, Qwen, DeepSeek) or SentencePiece-style BPE (Llama 2, Mistral). A layout without a
   reader is an :class:`UnsupportedTokenizerError` that names the folder, the layout found and the layouts
   supported.
3. ``tokenizer.model`` alone (Meta's original Llama layout, or a Mistral folder without tokenizer.json): two
   different formats share this name. Llama 3's is a tiktoken rank file (text, one "base64 rank" pair a
   line) and goes to :func:`~.families.llama3_tokenizer`; Llama 2's and Mistral's is a SentencePiece
   protobuf and goes to :func:`~.sentencepiece_bpe.sentencepiece_tokenizer`.
4. A GPT-2 checkpoint without tokenizer files: GPT-2's own tokenizer from the data layer.

The chat format comes from ``tokenizer_config.json``'s ``chat_template`` (or ``chat_template.jinja``, where
transformers 5 puts it), recognized by its markers; a
folder without one (Meta's layout ships none) is treated as a base model. The end-of-sequence ids of
``generation_config.json`` (else ``config.json``) are then added to the tokenizer's own, so generation stops
wherever ``transformers``' ``generate`` would (DeepSeek-V3: id 1).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bpe import ByteLevelBPETokenizer
from .chat import chat_format_from_template
from .families import byte_level_json_tokenizer, gpt2_tokenizer, llama3_tokenizer
from .qwen1 import qwen1_tokenizer
from .sentencepiece_bpe import SPACE, SentencePieceBPETokenizer, sentencepiece_json_tokenizer, sentencepiece_tokenizer

BYTE_LEVEL_BPE = "byte-level BPE"
SENTENCEPIECE_BPE = "SentencePiece-style BPE"


class UnsupportedTokenizerError(ValueError):
    """The folder's tokenizer files are missing or in a layout this package cannot read."""


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _tokenizer_config(folder: Path) -> dict:
    """``tokenizer_config.json`` ({} when absent) with its ``chat_template``; transformers 5 writes the template
    to ``chat_template.jinja`` beside it instead, so that file fills the key when the JSON has none."""
    config = _read_json(folder / "tokenizer_config.json")
    jinja = folder / "chat_template.jinja"
    if not config.get("chat_template") and jinja.is_file():
        config = {**config, "chat_template": jinja.read_text(encoding="utf-8")}
    return config


# ------------------------------------------------------------------- tokenizer.json

def _steps(part: dict | None) -> list[dict]:
    """The steps of a tokenizer.json normalizer / pre-tokenizer / decoder (a Sequence lists its steps)."""
    if not part:
        return []
    steps = part.get("pretokenizers") or part.get("normalizers") or part.get("decoders")
    return [s for step in steps for s in _steps(step)] if steps else [part]


def tokenizer_json_kind(spec: dict) -> str:
    """Name the layout of a parsed ``tokenizer.json``: byte-level BPE (GPT-2, Llama 3, Qwen, DeepSeek),
    SentencePiece-style BPE (byte fallback, or spaces written "▁" by a Metaspace pre-tokenizer or by
    Prepend / Replace normalizers: Llama 2, Mistral) or the model type otherwise."""
    model = spec.get("model") or {}
    kind = model.get("type") or "unknown"
    if kind != "BPE":
        return f"{kind} model"
    normalizers = _steps(spec.get("normalizer"))
    steps = [s.get("type") for s in _steps(spec.get("pre_tokenizer")) + _steps(spec.get("decoder")) + normalizers]
    space_symbol = any(SPACE in (s.get("prepend"), s.get("content")) for s in normalizers)
    if model.get("byte_fallback") or "Metaspace" in steps or "ByteFallback" in steps or space_symbol:
        return SENTENCEPIECE_BPE
    if "ByteLevel" in steps:
        return BYTE_LEVEL_BPE
    return f"BPE model without a byte-level or SentencePiece layout (steps: {steps})"


def _sentencepiece_json(folder: Path, spec: dict, config: dict) -> SentencePieceBPETokenizer:
    chat = chat_format_from_template(config.get("chat_template"), sentencepiece=True)
    return sentencepiece_json_tokenizer(spec, folder.name, config=config, chat_format=chat)


# tokenizer.json layout -> reader (folder, parsed tokenizer.json, parsed tokenizer_config.json -> tokenizer);
# a new layout is one more entry
TOKENIZER_JSON_READERS: dict[str, Callable[[Path, dict, dict], Any]] = {
    BYTE_LEVEL_BPE: byte_level_json_tokenizer,
    SENTENCEPIECE_BPE: _sentencepiece_json,
}


def tokenizer_json_tokenizer(folder: str | os.PathLike) -> ByteLevelBPETokenizer | SentencePieceBPETokenizer:
    """The tokenizer of a Hugging Face folder's ``tokenizer.json`` (+ ``tokenizer_config.json``), read by
    the reader registered for its layout; the chat template picks the chat format (none: a base model)."""
    folder = Path(folder)
    json_file = folder / "tokenizer.json"
    spec = json.loads(json_file.read_text(encoding="utf-8"))
    kind = tokenizer_json_kind(spec)
    reader = TOKENIZER_JSON_READERS.get(kind)
    if reader is None:
        raise UnsupportedTokenizerError(
            f"{json_file} holds a {kind} tokenizer, which this package cannot read yet; supported: "
            f"tokenizer.json with {', '.join(TOKENIZER_JSON_READERS)}, Qwen1's qwen.tiktoken, or a "
            "tokenizer.model (SentencePiece, or Llama 3's tiktoken ranks)"
        )
    return reader(folder, spec, _tokenizer_config(folder))


# ------------------------------------------------------------------- tokenizer.model

# the first line of a tiktoken rank file: base64 token bytes, a space, the rank; a SentencePiece protobuf
# starts with byte 0x0a (field 1, a piece), which reads as an empty first line
_TIKTOKEN_LINE = re.compile(rb"[A-Za-z0-9+/]+=* \d+\r?\n?")


def is_tiktoken_ranks(path: str | os.PathLike) -> bool:
    """Whether a ``tokenizer.model`` is a tiktoken rank file (Llama 3) rather than a SentencePiece model."""
    with open(path, "rb") as f:
        return _TIKTOKEN_LINE.fullmatch(f.readline(256)) is not None


def tokenizer_model_tokenizer(folder: str | os.PathLike) -> ByteLevelBPETokenizer | SentencePieceBPETokenizer:
    """The tokenizer of a folder's ``tokenizer.model``: Llama 3's tiktoken ranks or a Llama 2 / Mistral
    SentencePiece model. Instruct / chat models are recognized by ``tokenizer_config.json``'s chat template
    (Llama 3's header markers, or ``[INST]``); without one the folder is treated as a base model."""
    folder = Path(folder)
    model_file = folder / "tokenizer.model"
    template = _tokenizer_config(folder).get("chat_template")
    if is_tiktoken_ranks(model_file):
        return llama3_tokenizer(instruct="<|start_header_id|>" in (template or ""), path=str(model_file))
    chat = chat_format_from_template(template, sentencepiece=True)
    return sentencepiece_tokenizer(model_file, chat=chat.kind if chat is not None else None)


# ------------------------------------------------------------------- the folder

def qwen1_is_chat(folder: str | os.PathLike) -> bool:
    """Qwen1 -Chat checkpoints declare ``"chat_format": "chatml"`` in generation_config.json; base ones "raw"."""
    return _read_json(Path(folder) / "generation_config.json").get("chat_format") == "chatml"


def checkpoint_eos_ids(folder: str | os.PathLike) -> tuple[int, ...]:
    """``eos_token_id`` (one id or a list) from generation_config.json, else config.json; () when absent."""
    folder = Path(folder)
    for name in ("generation_config.json", "config.json"):
        value = _read_json(folder / name).get("eos_token_id")
        if value is not None:
            return tuple(value) if isinstance(value, list) else (value,)
    return ()


def folder_tokenizer(folder: str | os.PathLike, family: str | None = None) -> Any:
    """The tokenizer of a checkpoint folder (``family``: the model's, for the GPT-2 fallback)."""
    folder = Path(folder)
    if (folder / "qwen.tiktoken").is_file():
        tokenizer = qwen1_tokenizer(folder / "qwen.tiktoken", chat=qwen1_is_chat(folder))
    elif (folder / "tokenizer.json").is_file():
        tokenizer = tokenizer_json_tokenizer(folder)
    elif (folder / "tokenizer.model").is_file():
        tokenizer = tokenizer_model_tokenizer(folder)
    elif family == "gpt2":
        return gpt2_tokenizer()
    else:
        raise UnsupportedTokenizerError(
            f"{folder} has no tokenizer file (tokenizer.json, tokenizer.model, or qwen.tiktoken for Qwen1); copy "
            "the model's tokenizer files next to its weights"
        )
    extra = tuple(i for i in checkpoint_eos_ids(folder) if i not in tokenizer.eos_ids)
    if extra:
        tokenizer = copy.copy(tokenizer)  # readers may hand out cached objects (llama3_tokenizer)
        tokenizer.eos_ids = tuple(tokenizer.eos_ids) + extra
    return tokenizer
