"""BERT's WordPiece tokenizer: basic cleanup and splitting, then greedy longest-match subwords.

1. clean: drop control characters and U+FFFD, turn every whitespace character into a space;
2. put spaces around CJK ideographs (each becomes its own word);
3. uncased models: lower-case and strip accents (NFD, drop combining marks);
4. split on whitespace and around every punctuation character;
5. each word becomes the longest vocabulary prefix, then the longest ``##``-continuation, and so on; a word
   that cannot be covered (or is longer than 100 characters) becomes ``[UNK]``.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    # all non-letter/number ASCII counts as punctuation for BERT, plus Unicode P* categories
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
    ))


class WordPieceTokenizer:
    def __init__(self, vocab_file: str | os.PathLike, *, lowercase: bool = True, max_word_chars: int = 100) -> None:
        tokens = Path(vocab_file).read_text(encoding="utf-8").splitlines()
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.id_to_token = tokens
        self.lowercase = lowercase
        self.max_word_chars = max_word_chars
        for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
            if special not in self.vocab:
                raise ValueError(f"{vocab_file} lacks the special token {special}; is it a BERT vocab.txt?")
        self.pad_id, self.unk_id = self.vocab["[PAD]"], self.vocab["[UNK]"]
        self.cls_id, self.sep_id, self.mask_id = self.vocab["[CLS]"], self.vocab["[SEP]"], self.vocab["[MASK]"]
        self._specials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}

    def _words(self, text: str) -> list[str]:
        chars = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD:
                continue
            cat = unicodedata.category(ch)
            if ch in " \t\n\r" or cat == "Zs":
                chars.append(" ")
            elif cat.startswith("C"):
                continue
            elif _is_cjk(cp):
                chars.append(f" {ch} ")
            else:
                chars.append(ch)
        words = []
        for word in "".join(chars).split():
            if word in self._specials:  # special tokens written in the text stay whole
                words.append(word)
                continue
            if self.lowercase:
                word = word.lower()
                word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
            current = ""
            for ch in word:
                if _is_punctuation(ch):
                    if current:
                        words.append(current)
                    words.append(ch)
                    current = ""
                else:
                    current += ch
            if current:
                words.append(current)
        return words

    def _wordpiece(self, word: str) -> list[int]:
        if word in self._specials:
            return [self.vocab[word]]
        if len(word) > self.max_word_chars:
            return [self.unk_id]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    pieces.append(self.vocab[piece])
                    break
                end -= 1
            else:
                return [self.unk_id]  # no prefix fits: the whole word is unknown
            start = end
        return pieces

    def tokenize(self, text: str) -> list[int]:
        """Ids of ``text`` without [CLS]/[SEP]."""
        return [i for word in self._words(text) for i in self._wordpiece(word)]

    def encode(self, text: str, pair: str | None = None) -> tuple[list[int], list[int]]:
        """``[CLS] text [SEP] (pair [SEP])`` ids and the matching token_type_ids (0 for text, 1 for pair)."""
        ids = [self.cls_id, *self.tokenize(text), self.sep_id]
        types = [0] * len(ids)
        if pair is not None:
            second = [*self.tokenize(pair), self.sep_id]
            ids += second
            types += [1] * len(second)
        return ids, types

    def decode(self, ids: list[int], *, skip_special: bool = True) -> str:
        out = ""
        for i in ids:
            token = self.id_to_token[int(i)]
            if skip_special and token in self._specials:
                continue
            out += token[2:] if token.startswith("##") else (" " + token if out else token)
        return out
