"""Chapter 2, working with text data: simple tokenizers, the sliding-window dataset and its data loader.

>>> from llms_from_scratch.data import read_text
>>> loader = create_dataloader_v1(read_text("the-verdict"), batch_size=8, max_length=4, stride=4)
>>> inputs, targets = next(iter(loader))   # both (8, 4); targets are the inputs shifted by one token
"""

from __future__ import annotations

import re

import tiktoken
import torch
from torch.utils.data import DataLoader, Dataset

from .data import gpt2_encoding

# Split on punctuation, double dashes and whitespace, keeping the separators (the capture group) as tokens.
SPLIT_PATTERN = r'([,.:;?_!"()\']|--|\s)'
# No space before these characters when ids are turned back into text.
_SPACE_BEFORE_PUNCT = re.compile(r'\s+([,.:;?!"()\'])')

UNK_TOKEN = "<|unk|>"
END_OF_TEXT = "<|endoftext|>"


def tokenize(text: str) -> list[str]:
    """Split ``text`` into words and punctuation marks, dropping whitespace."""
    return [item.strip() for item in re.split(SPLIT_PATTERN, text) if item.strip()]


def build_vocab(tokens: list[str], special_tokens: tuple[str, ...] = ()) -> dict[str, int]:
    """Map every distinct token (sorted) to an integer id; ``special_tokens`` get the ids after them."""
    all_tokens = sorted(set(tokens))
    all_tokens.extend(t for t in special_tokens if t not in all_tokens)
    return {token: integer for integer, token in enumerate(all_tokens)}


class SimpleTokenizerV1:
    """Word-level tokenizer over a fixed vocabulary; a word outside it is an error."""

    def __init__(self, vocab: dict[str, int]):
        self.str_to_int = vocab
        self.int_to_str = {i: s for s, i in vocab.items()}

    def encode(self, text: str) -> list[int]:
        preprocessed = tokenize(text)
        unknown = [s for s in preprocessed if s not in self.str_to_int]
        if unknown:
            shown = ", ".join(repr(s) for s in sorted(set(unknown))[:5])
            raise KeyError(
                f"{len(set(unknown))} word(s) are not in the vocabulary: {shown}. SimpleTokenizerV1 only knows "
                f"the words it was built from; add them to the vocabulary or use SimpleTokenizerV2, which maps "
                f"unknown words to {UNK_TOKEN}."
            )
        return [self.str_to_int[s] for s in preprocessed]

    def decode(self, ids: list[int]) -> str:
        text = " ".join(self.int_to_str[i] for i in ids)
        return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


class SimpleTokenizerV2:
    """Like :class:`SimpleTokenizerV1`, but unknown words become ``<|unk|>`` (which must be in the vocabulary)."""

    def __init__(self, vocab: dict[str, int]):
        if UNK_TOKEN not in vocab:
            raise ValueError(
                f"the vocabulary has no {UNK_TOKEN} entry, so unknown words would have no id; build it with "
                f"build_vocab(tokens, special_tokens=({END_OF_TEXT!r}, {UNK_TOKEN!r}))"
            )
        self.str_to_int = vocab
        self.int_to_str = {i: s for s, i in vocab.items()}

    def encode(self, text: str) -> list[int]:
        preprocessed = [s if s in self.str_to_int else UNK_TOKEN for s in tokenize(text)]
        return [self.str_to_int[s] for s in preprocessed]

    def decode(self, ids: list[int]) -> str:
        text = " ".join(self.int_to_str[i] for i in ids)
        return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


class GPTDatasetV1(Dataset):
    """Input/target chunks of ``max_length`` token ids, starting every ``stride`` tokens.

    The target chunk is the input chunk shifted one token to the right: position ``i`` of the target is the
    token the model must predict after reading positions ``0..i`` of the input.
    """

    def __init__(self, txt: str, tokenizer: tiktoken.Encoding, max_length: int, stride: int):
        if not txt:
            raise ValueError("the text is empty; pass the training text (for example read_text('the-verdict'))")
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        if stride < 1:
            raise ValueError(f"stride must be at least 1 (stride = max_length gives non-overlapping chunks), got {stride}")
        token_ids = tokenizer.encode(txt, allowed_special={END_OF_TEXT})
        if len(token_ids) <= max_length:
            raise ValueError(
                f"the text has {len(token_ids)} tokens, too few for one input/target pair of max_length="
                f"{max_length} (that needs {max_length + 1}); use a longer text or a smaller max_length"
            )

        self.input_ids = []
        self.target_ids = []
        for i in range(0, len(token_ids) - max_length, stride):
            input_chunk = token_ids[i : i + max_length]
            target_chunk = token_ids[i + 1 : i + max_length + 1]
            self.input_ids.append(torch.tensor(input_chunk))
            self.target_ids.append(torch.tensor(target_chunk))

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_ids[idx], self.target_ids[idx]


def create_dataloader_v1(
    txt: str,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
) -> DataLoader:
    """A data loader over :class:`GPTDatasetV1` with GPT-2's tokenizer (tiktoken's ``gpt2`` encoding)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    dataset = GPTDatasetV1(txt, gpt2_encoding(), max_length, stride)
    if drop_last and len(dataset) < batch_size:
        raise ValueError(
            f"the text gives only {len(dataset)} input/target pairs, fewer than batch_size={batch_size}, so "
            f"drop_last=True would leave no batch at all; use a smaller batch_size or stride, or drop_last=False"
        )
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers)
