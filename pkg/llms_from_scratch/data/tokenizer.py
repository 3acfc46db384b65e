"""GPT-2's byte-pair encoding, built from the BPE files the data layer fetches.

``tiktoken.get_encoding("gpt2")`` downloads the same two files from OpenAI on first use and cannot use a
local mirror. :func:`gpt2_mergeable_ranks` reads them from what :func:`fetch` delivers (cache, mirror or network,
checksums verified), so it works offline wherever the mirror is set. It is the one place GPT-2's tokenizer is
built from: :func:`gpt2_encoding` (the ``tiktoken.Encoding`` the chapters use) and the model zoo's
``tokenizers.gpt2_tokenizer`` both take their ranks from it.
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
END_OF_TEXT_ID = 50256  # the last id: 50,256 merged tokens come first
GPT2_VOCAB_SIZE = 50257


@lru_cache(maxsize=1)
def gpt2_mergeable_ranks() -> dict[bytes, int]:
    """GPT-2's merge ranks (token bytes -> id, 50,256 entries) from ``vocab.bpe`` and ``encoder.json``."""
    return data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(fetch("gpt2-vocab-bpe")),
        encoder_json_file=str(fetch("gpt2-encoder-json")),
    )


@lru_cache(maxsize=1)
def gpt2_encoding() -> tiktoken.Encoding:
    """Return GPT-2's tokenizer; ids are identical to ``tiktoken.get_encoding("gpt2")``."""
    return tiktoken.Encoding(
        name="gpt2",
        explicit_n_vocab=GPT2_VOCAB_SIZE,
        pat_str=GPT2_PATTERN,
        mergeable_ranks=gpt2_mergeable_ranks(),
        special_tokens={END_OF_TEXT: END_OF_TEXT_ID},
    )
