"""GPT-2's byte-pair encoding, built from the BPE files the data layer fetches.

``tiktoken.get_encoding("gpt2")`` downloads the same two files from OpenAI on first use and cannot use a
local mirror. This builds an identical ``tiktoken.Encoding`` from the files that :func:`fetch` delivers
(cache, mirror or network, checksums verified), so it works offline wherever the mirror is set.
"""

from __future__ import annotations

from functools import lru_cache

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

from .download import fetch

# GPT-2's pre-tokenization pattern as tiktoken writes it (r50k): contractions, letters, numbers, other
# symbols, each optionally preceded by one space, then whitespace. The possessive quantifiers (``++``) only
# speed matching up; they split text exactly as OpenAI's original pattern does.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
END_OF_TEXT = "<|endoftext|>"


@lru_cache(maxsize=1)
def gpt2_encoding() -> tiktoken.Encoding:
    """Return GPT-2's tokenizer; ids are identical to ``tiktoken.get_encoding("gpt2")``."""
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(fetch("gpt2-vocab-bpe")),
        encoder_json_file=str(fetch("gpt2-encoder-json")),
    )
    return tiktoken.Encoding(
        name="gpt2",
        explicit_n_vocab=50257,
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={END_OF_TEXT: 50256},
    )
