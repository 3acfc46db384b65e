"""Shared pieces of the model-zoo commands (generate, chat, serve): model arguments and loading."""

from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

DTYPES = ("auto", "float32", "bfloat16", "float16")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", default="smollm2-135m-instruct",
                        help="a downloadable checkpoint name (default: smollm2-135m-instruct), a .gguf file, or a "
                             "checkpoint folder (Hugging Face, or Meta's params.json layout)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="weight dtype; auto = bfloat16 on GPUs that support it, else float32")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-new-tokens", type=int, default=256, help="most tokens to generate (default 256)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None, help="sample from the smallest set with this mass")
    parser.add_argument("--seed", type=int, default=None, help="random seed for sampling")


def resolve_device(device: str, dtype: str):
    import torch

    from ..device import pick_device

    auto_device, auto_dtype = pick_device(verbose=False)
    dev = auto_device if device == "auto" else torch.device(device)
    if dtype == "auto":
        dt = auto_dtype if dev.type == auto_device.type else torch.float32
    else:
        dt = getattr(torch, dtype)
    return dev, dt


@lru_cache(maxsize=1)
def load_model_and_tokenizer(model: str, device: Any = "cpu", dtype: Any = None) -> tuple[Any, Any]:
    """Model and tokenizer for ``model`` (name, .gguf file or folder), the weights laid out for decoding one
    sequence at a time (what generate, chat and serve do); the last one stays loaded."""
    from ..nn import prepare_for_decoding

    model_, tokenizer = _load_model_and_tokenizer(model, device, dtype)
    return prepare_for_decoding(model_, batch_size=1), tokenizer


def _load_model_and_tokenizer(model: str, device: Any, dtype: Any) -> tuple[Any, Any]:
    import torch

    from ..models import (
        PRETRAINED,
        load_gguf,
        load_hf_checkpoint,
        load_meta_llama_checkpoint,
        load_pretrained,
        read_hf_config,
    )
    from ..tokenizers import folder_tokenizer, gguf_tokenizer

    dtype = dtype or torch.float32
    if model in PRETRAINED:
        return load_pretrained(model, dtype=dtype, device=device)
    path = Path(model)
    if path.suffix == ".gguf":
        return load_gguf(path, dtype=dtype, device=device), gguf_tokenizer(path)
    if path.is_dir():
        # Meta's original Llama layout: params.json + consolidated.00.pth + tokenizer.model
        meta = (path / "params.json").is_file() and not (path / "config.json").is_file()
        try:  # the tokenizer first: a folder it cannot serve fails before gigabytes of weights are read
            tokenizer = folder_tokenizer(path, "llama" if meta else read_hf_config(path).family)
        except ValueError as exc:  # UnsupportedTokenizerError, or a tokenizer file that fails its checks
            raise SystemExit(str(exc)) from None
        if meta:
            return load_meta_llama_checkpoint(path, dtype=dtype, device=device), tokenizer
        return load_hf_checkpoint(path, dtype=dtype, device=device), tokenizer
    names = ", ".join(sorted(PRETRAINED))
    raise SystemExit(f"unknown model {model!r}: give one of {names}, a .gguf file or a checkpoint folder")


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Instruct models get their chat format; base models see the raw text of the last message."""
    if getattr(tokenizer, "chat_format", None) is not None:
        return tokenizer.encode(tokenizer.apply_chat_template(messages))
    text = messages[-1]["content"]
    bos = getattr(tokenizer, "bos_id", None) is not None
    return tokenizer.encode(text, bos=bos)


class TextStream:
    """Turns a stream of token ids into text pieces, holding back incomplete UTF-8 characters."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.sent = 0

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special=True)
        if text.endswith("\ufffd"):  # the character continues in the next token
            return ""
        piece, self.sent = text[self.sent:], len(text)
        return piece


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
