"""Tokenizers for the model zoo: GPT-2, Llama 3, Qwen1, Qwen3, tokenizer.json and GGUF-embedded BPE, Llama 2 /
Mistral SentencePiece BPE and BERT WordPiece.

All byte-level BPE tokenizers share one implementation (:class:`ByteLevelBPETokenizer`, on tiktoken; not to be
confused with the book's from-scratch ``llms_from_scratch.bpe.BPETokenizer``); the chat formats of instruct
models live in :mod:`.chat`. Base models get no chat format. :func:`folder_tokenizer` (:mod:`.select`) decides
which tokenizer a checkpoint folder needs.
"""

from .bpe import ByteLevelBPETokenizer
from .chat import ChatFormat
from .families import gguf_tokenizer, gpt2_tokenizer, llama3_tokenizer, qwen3_tokenizer
from .qwen1 import qwen1_tokenizer
from .select import UnsupportedTokenizerError, folder_tokenizer, tokenizer_json_tokenizer
from .sentencepiece_bpe import SentencePieceBPETokenizer, sentencepiece_tokenizer
from .wordpiece import WordPieceTokenizer

__all__ = [
    "ByteLevelBPETokenizer",
    "ChatFormat",
    "SentencePieceBPETokenizer",
    "UnsupportedTokenizerError",
    "WordPieceTokenizer",
    "folder_tokenizer",
    "gguf_tokenizer",
    "gpt2_tokenizer",
    "llama3_tokenizer",
    "qwen1_tokenizer",
    "qwen3_tokenizer",
    "sentencepiece_tokenizer",
    "tokenizer_json_tokenizer",
]
