"""Tokenizers of the zoo's families, built from files the data layer fetches (or a GGUF file's metadata)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import regex

from ..data import fetch
from ..data.tokenizer import END_OF_TEXT, END_OF_TEXT_ID, gpt2_mergeable_ranks
from ..files.gguf import gguf_field, open_gguf
from .bpe import GPT2_PATTERN, LLAMA3_PATTERN, QWEN_PATTERN, ByteLevelBPETokenizer, nfc, ranks_from_merges
from .chat import ChatFormat, chat_format_from_template


@lru_cache(maxsize=1)
def gpt2_tokenizer() -> ByteLevelBPETokenizer:
    """GPT-2's tokenizer (ids identical to ``tiktoken.get_encoding("gpt2")``, the same ranks as
    ``data.gpt2_encoding``); no BOS, no chat format."""
    return ByteLevelBPETokenizer("gpt2", gpt2_mergeable_ranks(), GPT2_PATTERN, {END_OF_TEXT: END_OF_TEXT_ID},
                        eos_ids=(END_OF_TEXT_ID,), pad_id=END_OF_TEXT_ID)


LLAMA3_SPECIALS = {
    "<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|finetune_right_pad_id|>": 128004,
    "<|start_header_id|>": 128006, "<|end_header_id|>": 128007, "<|eom_id|>": 128008, "<|eot_id|>": 128009,
    "<|python_tag|>": 128010,
}


@lru_cache(maxsize=4)
def llama3_tokenizer(instruct: bool = True, path: str | None = None) -> ByteLevelBPETokenizer:
    """Llama 3 / 3.1 / 3.2: 128,000 tiktoken ranks plus 256 special tokens (3.1 names).

    Instruct models stop at ``<|eot_id|>`` (and ``<|eom_id|>``, ``<|end_of_text|>``) and use the header
    chat format; base models stop at ``<|end_of_text|>`` and have no chat format.
    """
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(path or fetch("llama3-tokenizer")))
    specials = dict(LLAMA3_SPECIALS)
    named = set(specials.values())
    reserved = 0
    for i in range(128000, 128256):  # the unnamed slots are "reserved special tokens", numbered in order
        if i not in named:
            specials[f"<|reserved_special_token_{reserved}|>"] = i
            reserved += 1
    eos = (128009, 128008, 128001) if instruct else (128001,)
    return ByteLevelBPETokenizer(
        "llama3-instruct" if instruct else "llama3", ranks, LLAMA3_PATTERN, specials, bos_id=128000,
        eos_ids=eos, pad_id=128004, chat_format=ChatFormat("llama3") if instruct else None,
    )


QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
]


@lru_cache(maxsize=2)
def qwen3_tokenizer(instruct: bool = True) -> ByteLevelBPETokenizer:
    """Qwen3: byte-level BPE (``vocab.json`` + ``merges.txt``), NFC-normalized input, specials from 151643.

    Instruct (post-trained) models use ChatML and stop at ``<|im_end|>``; ``enable_thinking=False`` in
    :meth:`apply_chat_template` pre-fills an empty think block. Base models stop at ``<|endoftext|>``.
    """
    vocab = json.loads(fetch("qwen3-vocab").read_text(encoding="utf-8"))
    tokens = [""] * len(vocab)
    for token, i in vocab.items():
        tokens[i] = token
    merges = fetch("qwen3-merges").read_text(encoding="utf-8").splitlines()
    merges = [m for m in merges if m and not m.startswith("#version")]
    ranks, rank_to_id = ranks_from_merges(tokens, merges)
    specials = {t: 151643 + i for i, t in enumerate(QWEN_SPECIALS)}
    return ByteLevelBPETokenizer(
        "qwen3" if instruct else "qwen3-base", ranks, QWEN_PATTERN, specials, rank_to_id=rank_to_id,
        normalize=nfc, eos_ids=(151645, 151643) if instruct else (151643,), pad_id=151643,
        chat_format=ChatFormat("qwen3", thinking=True) if instruct else None,
    )


# llama.cpp's names for pre-tokenizers -> (pattern, pre-split); "smollm" isolates each digit first
_GGUF_PRE = {
    "gpt2": (GPT2_PATTERN, None),
    "smollm": (GPT2_PATTERN, regex.compile(r"(\p{N})")),
    "llama-bpe": (LLAMA3_PATTERN, None),
    "qwen2": (QWEN_PATTERN, None),
}


def gguf_tokenizer(path: str | os.PathLike) -> ByteLevelBPETokenizer:
    """The tokenizer stored in a GGUF file's metadata (byte-level BPE models)."""
    reader = open_gguf(path)

    def field(key, default=None):
        return gguf_field(reader, key, default)

    if field("tokenizer.ggml.model") != "gpt2":
        raise ValueError(f"{Path(path).name}: only byte-level BPE ('gpt2') GGUF tokenizers are supported, "
                         f"not {field('tokenizer.ggml.model')!r}")
    pre = field("tokenizer.ggml.pre", "gpt2")
    if pre not in _GGUF_PRE:
        raise ValueError(f"GGUF pre-tokenizer {pre!r} is not supported; known: {sorted(_GGUF_PRE)}")
    tokens = field("tokenizer.ggml.tokens")
    types = field("tokenizer.ggml.token_type")
    # token types 3 (control) and 4 (user-defined) are matched whole in text
    specials = {t: i for i, (t, kind) in enumerate(zip(tokens, types)) if kind in (3, 4)}
    ranks, rank_to_id = ranks_from_merges(tokens, field("tokenizer.ggml.merges"), special_ids=specials.values())
    pattern, pre_split = _GGUF_PRE[pre]
    chat = chat_format_from_template(field("tokenizer.chat_template"))
    eos = field("tokenizer.ggml.eos_token_id")
    return ByteLevelBPETokenizer(
        Path(path).stem, ranks, pattern, specials, rank_to_id=rank_to_id, pre_split=pre_split,
        bos_id=field("tokenizer.ggml.bos_token_id"), eos_ids=(eos,) if eos is not None else (),
        pad_id=field("tokenizer.ggml.padding_token_id"), chat_format=chat,
    )


def _pre_tokenizer_plan(pre: dict | None) -> tuple[str, tuple[regex.Pattern, ...]]:
    """Map a tokenizer.json pre-tokenizer onto (tiktoken pattern, pre-split stages).

    Each step of a ``Sequence`` cuts every piece left by the steps before it: ``Split`` (Isolated) keeps its
    matches and the text between them, ``Digits`` isolates digits, ``ByteLevel`` with ``use_regex`` splits
    with GPT-2's pattern. The last cutting step becomes tiktoken's pattern, the earlier ones pre-split
    stages (DeepSeek-V3: digits in runs of up to three, then CJK runs, then its word pattern).
    """
    steps = pre.get("pretokenizers", [pre]) if pre and pre.get("type") == "Sequence" else [pre] if pre else []
    kinds = [s.get("type") for s in steps]
    patterns: list[tuple[str, bool]] = []  # (regex, whether text between matches must be kept as pieces)
    for step in steps:
        kind = step.get("type")
        if kind == "Digits":
            patterns.append((r"\p{N}" if step.get("individual_digits") else r"\p{N}+", True))
        elif kind == "Split":
            if step.get("behavior", "Isolated") != "Isolated" or step.get("invert"):
                raise ValueError(f"Split pre-tokenizer with behavior {step.get('behavior')!r} and invert="
                                 f"{step.get('invert')} is not supported (only Isolated, invert=false)")
            pattern = step["pattern"]
            patterns.append((pattern["Regex"] if "Regex" in pattern else regex.escape(pattern["String"]), True))
        elif kind == "ByteLevel":
            if step.get("add_prefix_space"):
                raise ValueError("ByteLevel pre-tokenizer with add_prefix_space=true is not supported")
            if step.get("use_regex", True):
                patterns.append((GPT2_PATTERN, False))  # covers all text
        else:
            raise ValueError(f"pre-tokenizer {kind!r} is not supported (steps: {kinds})")
    if not patterns:
        return r"[\s\S]+", ()  # no pre-tokenizer: the whole text is one piece
    stages = tuple(regex.compile(p) for p, _ in patterns[:-1])
    last, keep_gaps = patterns[-1]
    # tiktoken keeps only matches; a second branch turns each stretch no match starts in into a piece
    return (f"(?:{last})|(?:(?!(?:{last}))[\\s\\S])+" if keep_gaps else last), stages


def byte_level_json_tokenizer(folder: Path, spec: dict, config: dict) -> ByteLevelBPETokenizer:
    """A byte-level BPE tokenizer (GPT-2 style) from a folder's parsed ``tokenizer.json`` (``spec``) and
    ``tokenizer_config.json`` (``config``, {} when absent). :func:`~.select.tokenizer_json_tokenizer` reads
    the files and picks this reader for the byte-level layout."""
    model = spec["model"]
    vocab = model["vocab"]
    specials = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    tokens = [""] * (max([*vocab.values(), *specials.values()]) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    ranks, rank_to_id = ranks_from_merges(tokens, model["merges"], special_ids=specials.values())
    pattern, pre_split = _pre_tokenizer_plan(spec.get("pre_tokenizer"))
    normalizer = spec.get("normalizer") or {}
    if normalizer.get("type") not in (None, "NFC"):
        raise ValueError(f"{folder / 'tokenizer.json'}: normalizer {normalizer.get('type')!r} is not supported "
                         "(none or NFC)")
    chat = chat_format_from_template(config.get("chat_template"))

    def token_id(key: str) -> int | None:
        value = config.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        return specials.get(value) if value is not None else None

    eos = token_id("eos_token")
    return ByteLevelBPETokenizer(
        folder.name, ranks, pattern, specials, rank_to_id=rank_to_id, pre_split=pre_split,
        normalize=nfc if normalizer.get("type") == "NFC" else None, bos_id=token_id("bos_token"),
        eos_ids=(eos,) if eos is not None else (), pad_id=token_id("pad_token"), chat_format=chat,
    )

