"""Shared pieces of the model-zoo commands (generate, chat, serve): model and sampling options, and loading."""

from __future__ import annotations

import argparse
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import CommandError, UsageError, positive_int, random_seed

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE_HELP = ("cpu, cuda, cuda:1, mps or auto (default): the first of CUDA, Apple MPS and the CPU that is "
               "available, for every model source")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", default="smollm2-135m-instruct",
                        help="a downloadable checkpoint name (default: smollm2-135m-instruct), a .gguf file, or a "
                             "checkpoint folder (Hugging Face, or Meta's params.json layout)")
    parser.add_argument("--device", default="auto", type=device_option, help=DEVICE_HELP)
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="weight dtype; auto = bfloat16 on GPUs that support it, else float32")
    parser.add_argument("--no-autotune", action="store_true",
                        help="decode with plain matrix products instead of the kernels measured fastest on this "
                             "CPU (the measurement runs once per machine and model, then is read from the cache)")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-new-tokens", type=positive_int, default=256,
                        help="most tokens to generate (default 256)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-k", type=positive_int, default=None, help="sample among the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None, help="sample from the smallest set with this mass")
    parser.add_argument("--seed", type=random_seed, default=None, help="random seed for sampling")


def device_option(text: str) -> str:
    """argparse ``type=`` for ``--device``: ``auto`` or a device this machine has, checked when the command line
    is parsed (before any model is loaded)."""
    if text == "auto" or re.fullmatch(r"cpu(:\d+)?", text):
        return text
    if not re.fullmatch(r"(cuda|mps)(:\d+)?", text):  # refused without importing torch
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda, cuda:N, mps or auto")
    import torch

    device = torch.device(text)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{text!r} needs a CUDA GPU and none is available; use cpu or auto")
        if device.index is not None and device.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {count} CUDA GPU(s), numbered from 0")
    else:
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: Apple's MPS backend is not available here; use cpu or auto")
    return text


def sampling_from_args(args: argparse.Namespace):
    """The :class:`~llms_from_scratch.serving.generation.SamplingParams` the options ask for; a value it
    rejects (``--top-p 1.5``) is a usage error. Needs no torch: commands call it before loading anything."""
    from ..serving.sampling import SamplingParams

    try:
        return SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    except ValueError as exc:  # the message starts with the field's name: temperature, top_k, ...
        raise UsageError(f"--{str(exc).replace('_', '-')}") from None


def resolve_device(device: str, dtype: str):
    """``(torch.device, torch.dtype)`` for the ``--device`` and ``--dtype`` options (see :data:`DEVICE_HELP`)."""
    import torch

    from ..device import pick_device

    auto_device, auto_dtype = pick_device(verbose=False)
    try:
        dev = auto_device if device == "auto" else torch.device(device)
    except RuntimeError as exc:  # torch's message names the string it could not parse
        raise UsageError(f"--device: {exc}") from None
    if dtype == "auto":
        dt = auto_dtype if dev.type == auto_device.type else torch.float32
    else:
        dt = getattr(torch, dtype)
    return dev, dt


@lru_cache(maxsize=1)
def load_model_and_tokenizer(model: str, device: Any = "cpu", dtype: Any = None,
                             autotune: bool = True) -> tuple[Any, Any]:
    """Model and tokenizer for ``model`` (name, .gguf file or folder), set up for decoding one sequence at a time
    (what generate, chat and serve do) with the kernels measured fastest here, or plain with ``autotune=False``;
    the last one stays loaded."""
    from ..nn import prepare_for_decoding

    model_, tokenizer = _load_model_and_tokenizer(model, device, dtype)
    return prepare_for_decoding(model_, batch_size=1, autotune=autotune), tokenizer


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
            raise CommandError(str(exc)) from None
        if meta:
            return load_meta_llama_checkpoint(path, dtype=dtype, device=device), tokenizer
        return load_hf_checkpoint(path, dtype=dtype, device=device), tokenizer
    names = ", ".join(sorted(PRETRAINED))
    raise CommandError(f"unknown model {model!r}: give one of {names}, a .gguf file or a checkpoint folder")


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Instruct models get their chat format (special-token strings typed in a message stay plain text, as in
    ``chat`` and ``serve``); base models see the raw text of the last message."""
    if getattr(tokenizer, "chat_format", None) is not None:
        return tokenizer.encode_chat(messages)
    text = messages[-1]["content"]
    bos = getattr(tokenizer, "bos_id", None) is not None
    return tokenizer.encode(text, bos=bos)
