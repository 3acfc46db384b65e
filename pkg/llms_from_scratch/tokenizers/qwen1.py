"""Qwen1's tokenizer: tiktoken ranks from the ``qwen.tiktoken`` file of the Qwen-1.8B/7B/14B repositories.

The file holds one ``base64(token bytes) rank`` line per regular token (151,643 of them); the rank is also
the token id. Text is NFC-normalized and pre-split with the same regular expression Qwen2/3 use. Special
tokens follow the regular ones: ``<|endoftext|>`` 151643, ``<|im_start|>`` 151644, ``<|im_end|>`` 151645,
then ``<|extra_0|>`` ... ``<|extra_204|>`` (151646-151850; Qwen2/3 put different specials there). There is
no BOS token. The chat models use ChatML and stop at ``<|im_end|>``.
"""

from __future__ import annotations

import os

from .bpe import QWEN_PATTERN, ByteLevelBPETokenizer, nfc
from .chat import ChatFormat

QWEN1_SPECIALS = {
    "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
    **{f"<|extra_{i}|>": 151646 + i for i in range(205)},
}


def qwen1_tokenizer(path: str | os.PathLike, *, chat: bool = False) -> ByteLevelBPETokenizer:
    """The tokenizer of a Qwen1 checkpoint from its ``qwen.tiktoken`` file (``chat``: the -Chat models)."""
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(path))
    if len(ranks) != 151643 or max(ranks.values()) != 151642:
        raise ValueError(f"{path} holds {len(ranks)} ranks up to {max(ranks.values())}; Qwen1's qwen.tiktoken has "
                         "151643 ranks numbered 0..151642. Is it the right file?")
    return ByteLevelBPETokenizer(
        "qwen1-chat" if chat else "qwen1", ranks, QWEN_PATTERN, dict(QWEN1_SPECIALS), normalize=nfc,
        eos_ids=(151645, 151643) if chat else (151643,), pad_id=151643,
        chat_format=ChatFormat("chatml") if chat else None,
    )
