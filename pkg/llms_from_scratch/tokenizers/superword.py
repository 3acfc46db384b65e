"""Superword BPE: SuperBPE's two-stage curriculum on top of the from-scratch :class:`~llms_from_scratch.bpe.BPETokenizer`.

>>> tok = SuperBPETokenizer().train(text, vocab_size=16_000, transition_vocab_size=12_800)
>>> [tok.decode([i]) for i in tok.encode("one of the best films of the year .")]   # e.g. ' of the'

Stage 1 is plain BPE: GPT-2's regular expression cuts the text into chunks (a word with its leading space, a run
of punctuation, ...) and merges stay inside a chunk, until the vocabulary reaches ``transition_vocab_size``.
Stage 2 keeps every stage-1 merge and token and goes on merging, but over *groups* of consecutive chunks: a group
runs until a newline or a sentence-ending ``.``, ``!`` or ``?``, so its tokens may cross the spaces between
words (" of the", " at the end of"). Each group starts from its stage-1 tokens, exactly as encoding produces them.

Encoding repeats the two stages: each chunk is encoded with the stage-1 merges, then the stage-2 merges are applied
to each group's tokens in rank order (lowest-numbered merge first, leftmost on ties). Every merge joins the bytes of
two tokens, so ``decode(encode(text)) == text`` for any text.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Collection
from pathlib import Path

import regex

from ..bpe import (
    END_OF_TEXT,
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    learn_merges,
    merge_lowest_rank_first,
    training_pieces,
    valid_unicode,
)
from ..files import atomic_path

FORMAT_NAME = "llms-from-scratch-superbpe"
FORMAT_VERSION = 1

# A chunk that ends a group and stands alone: one holding a line break, or a run of sentence-ending punctuation
# (with GPT-2's optional leading space). Commas, quotes and brackets stay inside groups.
SENTENCE_BREAK = r"[\r\n]|^ ?[.!?]+$"


class SuperBPETokenizer(BPETokenizer):
    """A byte-level BPE tokenizer whose late merges may cross whitespace (SuperBPE, Liu et al. 2025).

    ``merges[:n_stage1]`` are the stage-1 merges (inside GPT-2 chunks), the rest the stage-2 merges (inside groups
    of chunks split at ``break_pattern``). ``vocab``, ``special_tokens``, :meth:`encode` and :meth:`decode` behave
    as in :class:`BPETokenizer`.
    """

    format_name = FORMAT_NAME  # the "format" field of saved files, so a file loads only into its own class

    def __init__(self, pattern: str = GPT2_SPLIT_PATTERN, break_pattern: str = SENTENCE_BREAK):
        self.break_pattern = break_pattern
        self._break = regex.compile(break_pattern)
        self.n_stage1 = 0
        super().__init__(pattern)

    def _rebuild(self) -> None:
        self.n_stage1 = min(self.n_stage1, len(self.merges))
        super()._rebuild()
        # Stage-1 encoding must not see superword tokens, so its pair table keeps only stage-1 ids; stage 2 merges
        # exactly its learned pairs.
        first_stage2 = 256 + self.n_stage1
        self._pair_to_id = {
            pair: new for pair, new in self._pair_to_id.items()
            if new < first_stage2 and pair[0] < first_stage2 and pair[1] < first_stage2
        }
        self._stage2_pairs = {(left, right): new for left, right, new in self.merges[self.n_stage1:]}
        self._group_cache: dict[tuple[str, ...], list[int]] = {}

    @property
    def n_stage2(self) -> int:
        return len(self.merges) - self.n_stage1

    # ------------------------------------------------------------------ pre-tokenization

    def groups(self, text: str) -> list[tuple[str, ...]]:
        """Cut ``text`` into GPT-2 chunks and the chunks into stage-2 groups (their concatenation is ``text``)."""
        groups: list[tuple[str, ...]] = []
        current: list[str] = []
        for chunk in self._split.findall(text):
            if self._break.search(chunk):
                if current:
                    groups.append(tuple(current))
                    current = []
                groups.append((chunk,))
            else:
                current.append(chunk)
        if current:
            groups.append(tuple(current))
        return groups

    # ------------------------------------------------------------------ training

    def train(
        self,
        text: str,
        vocab_size: int,
        allowed_special: Collection[str] = frozenset({END_OF_TEXT}),
        transition_vocab_size: int | None = None,
    ) -> SuperBPETokenizer:
        """Learn stage-1 merges up to ``transition_vocab_size`` tokens, then stage-2 merges up to ``vocab_size``.

        Both sizes count the 256 byte tokens and the special tokens. ``transition_vocab_size=None`` puts the
        transition at 80% of ``vocab_size``; ``transition_vocab_size=vocab_size`` gives plain BPE. Stage 2 learns
        at most ``vocab_size - transition_vocab_size`` merges; either stage stops early when no pair occurs twice,
        and the vocabulary is then smaller than ``vocab_size``.
        """
        if transition_vocab_size is None:
            transition_vocab_size = int(0.8 * vocab_size)
        if not transition_vocab_size <= vocab_size:
            raise ValueError(
                f"transition_vocab_size={transition_vocab_size} is larger than vocab_size={vocab_size}; "
                f"stage 1 must end before the final vocabulary size"
            )
        # Stage 1: plain BPE. It numbers the special tokens after its own merges; they are renumbered below.
        super().train(text, transition_vocab_size, allowed_special)
        self.n_stage1 = len(self.merges)
        specials = sorted(self.special_tokens)
        self.special_tokens = {}
        self._rebuild()

        # Stage 2: each distinct group once, as the concatenation of its chunks' stage-1 tokens.
        _, pieces = training_pieces(text, vocab_size, specials)
        group_counts = Counter(group for piece in pieces for group in self.groups(piece))
        words = [[i for chunk in group for i in self._encode_chunk(chunk)] for group in group_counts]
        freqs = list(group_counts.values())
        n_merges = vocab_size - transition_vocab_size  # stage 2's own budget, even if stage 1 stopped early
        self.merges = self.merges + learn_merges(words, freqs, n_merges, first_id=256 + self.n_stage1)

        first_special = 256 + len(self.merges)
        self.special_tokens = {s: first_special + k for k, s in enumerate(specials)}
        self._rebuild()
        return self

    # ------------------------------------------------------------------ encoding

    def _encode_group(self, group: tuple[str, ...]) -> list[int]:
        ids = self._group_cache.get(group)
        if ids is not None:
            return ids
        ids = [i for chunk in group for i in self._encode_chunk(chunk)]
        ids = merge_lowest_rank_first(ids, self._stage2_pairs)
        if len(self._group_cache) < 100_000:
            self._group_cache[group] = ids
        return ids

    def clear_cache(self) -> None:
        """Forget the ids of chunks and groups seen so far."""
        super().clear_cache()
        self._group_cache.clear()

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` treating special-token strings as plain text."""
        ids: list[int] = []
        for group in self.groups(valid_unicode(text)):
            ids.extend(self._encode_group(group))
        return ids

    def is_superword(self, token_id: int) -> bool:
        """Whether the token crosses a word boundary: it holds a space or line break after some other character."""
        text = self.vocab[token_id].decode("utf-8", errors="replace")
        return regex.search(r"\S\s", text) is not None

    # ------------------------------------------------------------------ saving and loading

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to a JSON file (written to a temporary file first, then renamed into place)."""
        state = {
            "format": self.format_name,
            "version": FORMAT_VERSION,
            "pattern": self.pattern,
            "break_pattern": self.break_pattern,
            "byte_ids": self.byte_ids,
            "merges": [list(m) for m in self.merges],
            "n_stage1": self.n_stage1,
            "special_tokens": self.special_tokens,
        }
        with atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SuperBPETokenizer:  # returns an instance of ``cls``
        """Read a tokenizer written by :meth:`save`."""
        with open(path, encoding="utf-8") as f:
            try:
                state = json.load(f)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} is not a tokenizer file written by {cls.__name__}.save ({exc})") from None
        if not isinstance(state, dict) or state.get("format") != cls.format_name:
            raise ValueError(f"{path} is not a tokenizer file written by {cls.__name__}.save")
        if state.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path} has format version {state.get('version')}; this code reads {FORMAT_VERSION}")
        tok = cls(pattern=state["pattern"], break_pattern=state["break_pattern"])
        tok.byte_ids = list(state["byte_ids"])
        tok.merges = [tuple(m) for m in state["merges"]]
        tok.n_stage1 = int(state["n_stage1"])
        tok.special_tokens = dict(state["special_tokens"])
        tok._rebuild()
        return tok
