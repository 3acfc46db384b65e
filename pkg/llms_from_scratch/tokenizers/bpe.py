"""Byte-level BPE tokenizers on top of ``tiktoken``'s fast merge loop.

tiktoken merges the adjacent pair whose concatenation has the lowest rank. Vocabularies trained as
Hugging Face merge lists (SmolLM2, Qwen) give each token the rank of the merge that created it, which
makes the two procedures agree; ids are then mapped from ranks to the file's own numbering.

Text is cut into pieces in up to three stages before merging: special tokens (kept whole), an optional
normalization (Qwen applies NFC) and optional pre-split stages (SmolLM2 isolates every digit first;
DeepSeek-V3 isolates runs of up to three digits, then runs of CJK characters), then the model's regular
expression (tiktoken's ``pat_str``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import tiktoken

from ..data.tokenizer import GPT2_PATTERN  # noqa: F401  (re-exported: the GGUF and tokenizer.json loaders use it)
from .bytes_map import token_bytes
from .chat import ChatFormat, ChatTemplateMixin

# Llama 3 and Qwen: case-insensitive contractions, letters with one leading non-letter, numbers in runs of
# at most three (Llama 3) or single digits (Qwen), newlines kept apart from other whitespace
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


@dataclass
class ByteLevelBPETokenizer(ChatTemplateMixin):
    """A byte-level BPE tokenizer: ``encode`` text to ids, ``decode`` ids to text, optional chat format.

    The model zoo's tokenizer for GPT-2, Llama 3, Qwen, SmolLM2 and GGUF/``tokenizer.json`` vocabularies, on
    tiktoken's merge loop. (The book's own from-scratch tokenizer is ``llms_from_scratch.bpe.BPETokenizer``.)

    ``ranks`` maps token bytes to merge priority; ``rank_to_id`` (default: identity) maps a rank to the id
    the model uses. ``special_tokens`` maps strings such as ``<|im_end|>`` to ids; they are recognized in
    text and never split.
    """

    name: str
    ranks: dict[bytes, int]
    pattern: str
    special_tokens: dict[str, int]
    rank_to_id: Sequence[int] | None = None
    normalize: Callable[[str], str] | None = None
    pre_split: re.Pattern | Sequence[re.Pattern] | None = None
    bos_id: int | None = None
    eos_ids: tuple[int, ...] = ()
    pad_id: int | None = None
    chat_format: ChatFormat | None = None
    _encoding: tiktoken.Encoding = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._encoding = tiktoken.Encoding(self.name, pat_str=self.pattern, mergeable_ranks=self.ranks,
                                           special_tokens={})
        self._id_to_bytes: dict[int, bytes] = {}
        for token, rank in self.ranks.items():
            self._id_to_bytes[self._to_id(rank)] = token
        self._id_to_bytes.pop(MISSING, None)
        for text, i in self.special_tokens.items():
            self._id_to_bytes[i] = text.encode("utf-8")
        self._special_re = (
            re.compile("|".join(re.escape(t) for t in sorted(self.special_tokens, key=len, reverse=True)))
            if self.special_tokens else None
        )
        self._special_ids = set(self.special_tokens.values())
        stages = self.pre_split
        self._pre_split_stages = () if stages is None else (stages,) if hasattr(stages, "finditer") else tuple(stages)

    def _to_id(self, rank: int) -> int:
        return rank if self.rank_to_id is None else self.rank_to_id[rank]

    @property
    def vocab_size(self) -> int:
        return max(self._id_to_bytes) + 1

    def encode(self, text: str, *, bos: bool = False, eos: bool = False, allow_special: bool = True) -> list[int]:
        """Token ids of ``text``; special-token strings in the text become their ids unless ``allow_special``
        is False (then they are encoded as ordinary text)."""
        ids = [self.bos_id] if bos and self.bos_id is not None else []
        pos = 0
        if allow_special and self._special_re is not None:
            for m in self._special_re.finditer(text):
                ids += self._encode_ordinary(text[pos : m.start()])
                ids.append(self.special_tokens[m.group()])
                pos = m.end()
        ids += self._encode_ordinary(text[pos:])
        if eos and self.eos_ids:
            ids.append(self.eos_ids[0])
        return ids

    def _encode_ordinary(self, text: str) -> list[int]:
        if not text:
            return []
        if self.normalize is not None:
            text = self.normalize(text)
        chunks = [text]
        for stage in self._pre_split_stages:
            chunks = isolate(stage, chunks)
        out: list[int] = []
        for chunk in chunks:
            ranks = self._encoding.encode_ordinary(chunk)
            if self.rank_to_id is None:
                out += ranks
            else:
                out += [i for i in (self.rank_to_id[r] for r in ranks) if i != MISSING]
        return out

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        try:
            return b"".join(self._id_to_bytes[int(i)] for i in ids)
        except KeyError as exc:
            raise ValueError(f"token id {exc.args[0]} is not in the {self.name} vocabulary") from None

    def decode(self, ids: Iterable[int], *, skip_special: bool = False) -> str:
        if skip_special:
            ids = [i for i in ids if int(i) not in self._special_ids]
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids


def ranks_from_merges(tokens: Sequence[str], merges: Iterable[str | tuple[str, str]],
                      special_ids: Iterable[int] = ()) -> tuple[dict[bytes, int], list[int]]:
    """Merge-order ranks for a byte-level BPE vocabulary given as token strings (index = id) and merges.

    The 256 single bytes come first, then each merge's result in merge order; returns the ranks and the
    table from rank to token id. A byte the vocabulary lacks maps to id -1 and is dropped when encoding,
    as Hugging Face's BPE drops characters it cannot represent when there is no unknown token.
    """
    special_ids = set(special_ids)
    id_of = {}
    for i, t in enumerate(tokens):
        if i not in special_ids:
            id_of.setdefault(token_bytes(t), i)
    ranks: dict[bytes, int] = {}
    rank_to_id: list[int] = []
    for b in range(256):
        single = bytes([b])
        ranks[single] = len(rank_to_id)
        rank_to_id.append(id_of.get(single, MISSING))
    for merge in merges:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        merged = token_bytes(left) + token_bytes(right)
        if merged not in ranks:  # a token reachable by two merges keeps its first (highest-priority) rank
            ranks[merged] = len(rank_to_id)
            rank_to_id.append(id_of[merged])
    return ranks, rank_to_id


MISSING = -1


def isolate(pattern: re.Pattern, chunks: Iterable[str]) -> list[str]:
    """Cut each chunk into the non-empty matches of ``pattern`` and the non-empty stretches between them."""
    out: list[str] = []
    for chunk in chunks:
        pos = 0
        for m in pattern.finditer(chunk):
            if m.end() == m.start():
                continue
            if m.start() > pos:
                out.append(chunk[pos : m.start()])
            out.append(m.group())
            pos = m.end()
        if pos < len(chunk):
            out.append(chunk[pos:])
    return out


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)
