"""Which tokenizer a Hugging Face checkpoint folder needs, decided from the files in it.

:func:`folder_tokenizer` applies these rules in order:

1. ``qwen.tiktoken`` (Qwen1): :func:`~.qwen1.qwen1_tokenizer`. The -Chat repositories say
   ``"chat_format": "chatml"`` in ``generation_config.json`` and get the ChatML format; ``"raw"`` (the base
   repositories) or no such file means a base model without a chat format.
2. ``tokenizer.json``: the reader registered for its layout in :data:`TOKENIZER_JSON_READERS`
   (:func:`~.families.tokenizer_json_kind` names the layout). A layout without a reader is an
   :class:`UnsupportedTokenizerError` that names the folder, the layout found and the layouts supported.
3. A GPT-2 checkpoint without tokenizer files: GPT-2's own tokenizer from the data layer.

The end-of-sequence ids of ``generation_config.json`` (else ``config.json``) are then added to the
tokenizer's own, so generation stops wherever ``transformers``' ``generate`` would (DeepSeek-V3: id 1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bpe import BPETokenizer
from .families import BYTE_LEVEL_BPE, gpt2_tokenizer, tokenizer_json_kind, tokenizer_json_tokenizer
from .qwen1 import qwen1_tokenizer

# tokenizer.json layout -> reader (folder -> tokenizer). SentencePiece-style BPE (Mistral, Llama 2) slots in
# here as one more entry: families.SENTENCEPIECE_BPE: its reader.
TOKENIZER_JSON_READERS: dict[str, Callable[[Path], Any]] = {
    BYTE_LEVEL_BPE: tokenizer_json_tokenizer,
}


class UnsupportedTokenizerError(ValueError):
    """The folder's tokenizer files are missing or in a layout this package cannot read."""


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


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
    """The tokenizer of a Hugging Face checkpoint folder (``family``: the model's, for the GPT-2 fallback)."""
    folder = Path(folder)
    tiktoken_file, json_file = folder / "qwen.tiktoken", folder / "tokenizer.json"
    if tiktoken_file.is_file():
        tokenizer = qwen1_tokenizer(tiktoken_file, chat=qwen1_is_chat(folder))
    elif json_file.is_file():
        kind = tokenizer_json_kind(json.loads(json_file.read_text(encoding="utf-8")))
        reader = TOKENIZER_JSON_READERS.get(kind)
        if reader is None:
            raise UnsupportedTokenizerError(
                f"{json_file} holds a {kind} tokenizer, which this package cannot read yet; supported: "
                f"tokenizer.json with {', '.join(TOKENIZER_JSON_READERS)}, or Qwen1's qwen.tiktoken"
            )
        tokenizer = reader(folder)
    elif family == "gpt2":
        return gpt2_tokenizer()
    else:
        raise UnsupportedTokenizerError(
            f"{folder} has no tokenizer file (tokenizer.json, or qwen.tiktoken for Qwen1); copy the model's "
            "tokenizer files next to its weights"
        )
    if isinstance(tokenizer, BPETokenizer):
        extra = [i for i in checkpoint_eos_ids(folder) if i not in tokenizer.eos_ids]
        tokenizer.eos_ids = tuple(tokenizer.eos_ids) + tuple(extra)
    return tokenizer
