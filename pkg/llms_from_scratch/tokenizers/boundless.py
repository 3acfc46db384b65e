"""BoundlessBPE's supermerges: whole words joined into superwords, with no transition size to choose.

>>> tok = BoundlessBPETokenizer().train(text, vocab_size=16_000)
>>> tok.n_stage1, tok.n_stage2          # how the budget was split between ordinary merges and supermerges

Ordinary BPE never merges across the boundary of a pre-token (a GPT-2 chunk: a word with its leading space, a run
of punctuation, ...). BoundlessBPE (Schmidt et al., 2025) allows one more kind of merge, a *supermerge*: two
adjacent tokens may be joined across that boundary when each of them is a complete pre-token, i.e. the pre-token
has already been merged into a single token (or is a superword made of complete pre-tokens). " of" + " the" can
become " of the" once both words are single tokens, " the" + " filmmaker" only once " filmmaker" is.
Here only word pre-tokens (letters with an optional leading space) take part, so superwords never contain
punctuation, digits or line breaks.

Ordinary merges and supermerges compete for the same vocabulary by frequency. Ordinary merges change the
supermerges' counts only by completing pre-tokens, and supermerges never touch the inside of a pre-token, so the
ordinary merges come out the same whatever supermerges are interleaved with them. That allows a two-phase
formulation, each phase run by the shared merge loop :func:`~llms_from_scratch.bpe.learn_merges`:

1. Learn ordinary merges for the whole budget and note how often each one occurred.
2. Learn supermerges over runs of complete word pre-tokens, interleave the two count lists (most frequent
   first) and keep the ordinary merges that make the cut: that number is the transition, found from the data.
3. Learn the supermerges again with only those ordinary merges in place (fewer pre-tokens are complete), for the
   rest of the budget.

It approximates the paper's single loop rather than replaying it: here every kept ordinary merge is in place
before the first supermerge, whereas in one interleaved loop a supermerge can only be chosen once both of its
words are single tokens, which can change the order in which overlapping supermerges are picked.

The result is a :class:`~llms_from_scratch.tokenizers.superword.SuperBPETokenizer` whose stage 1 is the kept
ordinary merges and whose stage 2 is the supermerges. Encoding merges each chunk with the ordinary merges, then
applies the supermerges, lowest rank first, to each run of adjacent word chunks that became single tokens.
PickyBPE-style token deletion, which the paper combines with supermerges, is not part of this module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from ..bpe import END_OF_TEXT, GPT2_SPLIT_PATTERN, learn_merges, merge_lowest_rank_first, training_pieces
from .superword import SuperBPETokenizer

FORMAT_NAME = "llms-from-scratch-boundlessbpe"

# Matches (at its start) every chunk that is not a word: anything but letters with at most one leading space.
# Such chunks never join a superword; they end a run of candidates and stand alone.
NOT_A_WORD = r"^(?! ?\p{L}+\Z)"


class BoundlessBPETokenizer(SuperBPETokenizer):
    """A byte-level BPE tokenizer with BoundlessBPE's supermerges (Schmidt et al. 2025), without token deletion.

    ``merges[:n_stage1]`` are ordinary merges (inside GPT-2 chunks), the rest supermerges (between whole word
    chunks). ``vocab``, ``special_tokens``, :meth:`encode`, :meth:`decode`, :meth:`save` and :meth:`load` behave
    as in :class:`SuperBPETokenizer`.
    """

    format_name = FORMAT_NAME

    def __init__(self, pattern: str = GPT2_SPLIT_PATTERN, break_pattern: str = NOT_A_WORD):
        super().__init__(pattern, break_pattern)

    # ------------------------------------------------------------------ training

    def train(
        self,
        text: str,
        vocab_size: int,
        allowed_special: Collection[str] = frozenset({END_OF_TEXT}),
        transition_vocab_size: int | None = None,
    ) -> BoundlessBPETokenizer:
        """Learn ordinary merges and supermerges from ``text`` until the vocabulary has ``vocab_size`` tokens.

        Both kinds compete by frequency, so the split between them comes from the data; pass
        ``transition_vocab_size`` only to fix it instead (then the ordinary merges end there, as in SuperBPE).
        The size counts the 256 byte tokens and the special tokens. Training stops early when no pair occurs
        twice, and the vocabulary is then smaller than ``vocab_size``.
        """
        specials, pieces = training_pieces(text, vocab_size, allowed_special)
        budget = vocab_size - 256 - len(specials)
        if transition_vocab_size is not None and not 256 + len(specials) <= transition_vocab_size <= vocab_size:
            raise ValueError(
                f"transition_vocab_size={transition_vocab_size} must lie between {256 + len(specials)} (bytes and "
                f"special tokens) and vocab_size={vocab_size}"
            )
        # Runs of word chunks between non-word chunks, each distinct run once; every chunk is also counted alone.
        run_counts = Counter(run for piece in pieces for run in self.groups(piece))
        chunk_counts: Counter[str] = Counter()
        for run, count in run_counts.items():
            for chunk in run:
                chunk_counts[chunk] += count

        # Phase 1: ordinary merges for the whole budget, with how often each occurred.
        chunks = list(chunk_counts)
        words = [list(chunk.encode("utf-8")) for chunk in chunks]
        ordinary_counts: list[int] = []
        ordinary = learn_merges(words, list(chunk_counts.values()), budget, first_id=256, counts=ordinary_counts)
        # A chunk that ends as one token became complete with the merge that made that token (ids grow in merge
        # order); with only the first n ordinary merges it is complete exactly when its token id is below 256 + n.
        final_token = {chunk: word[0] for chunk, word in zip(chunks, words) if len(word) == 1}

        if transition_vocab_size is not None:
            n_ordinary = min(len(ordinary), transition_vocab_size - 256 - len(specials))
        else:
            # Phase 2: supermerges with every ordinary merge in place; interleave both count lists.
            probe_counts: list[int] = []
            probe_words, probe_freqs = self._superword_runs(run_counts, final_token, 256 + len(ordinary))
            learn_merges(probe_words, probe_freqs, budget, first_id=256 + len(ordinary), counts=probe_counts)
            n_ordinary = _kept_first_list(ordinary_counts, probe_counts, budget)

        # Phase 3: supermerges again, over the chunks that the kept ordinary merges complete.
        run_words, run_freqs = self._superword_runs(run_counts, final_token, 256 + n_ordinary)
        supermerges = learn_merges(run_words, run_freqs, budget - n_ordinary, first_id=256 + n_ordinary)

        self.byte_ids = list(range(256))
        self.merges = ordinary[:n_ordinary] + supermerges
        self.n_stage1 = n_ordinary
        first_special = 256 + len(self.merges)
        self.special_tokens = {s: first_special + k for k, s in enumerate(specials)}
        self._rebuild()
        return self

    def _superword_runs(
        self, run_counts: Counter[tuple[str, ...]], final_token: dict[str, int], first_missing: int
    ) -> tuple[list[list[int]], list[int]]:
        """The supermerge candidates: maximal stretches of two or more complete word chunks, as token ids.

        A chunk is complete when its final token id is below ``first_missing`` (made by a kept merge, or a byte).
        Chunks that are not words form runs of their own and are skipped here.
        """
        counts: Counter[tuple[int, ...]] = Counter()
        for run, count in run_counts.items():
            if len(run) < 2:
                continue
            stretch: list[int] = []
            for chunk in run:
                token = final_token.get(chunk)
                if token is not None and token < first_missing:
                    stretch.append(token)
                    continue
                if len(stretch) >= 2:
                    counts[tuple(stretch)] += count
                stretch = []
            if len(stretch) >= 2:
                counts[tuple(stretch)] += count
        return [list(ids) for ids in counts], list(counts.values())

    # ------------------------------------------------------------------ encoding

    def _encode_group(self, group: tuple[str, ...]) -> list[int]:
        ids = self._group_cache.get(group)
        if ids is not None:
            return ids
        # Supermerges join single-token chunks only: a chunk left in several pieces splits the run.
        ids, stretch = [], []
        for chunk in group:
            parts = self._encode_chunk(chunk)
            if len(parts) == 1:
                stretch.append(parts[0])
                continue
            ids.extend(merge_lowest_rank_first(stretch, self._stage2_pairs))
            ids.extend(parts)
            stretch = []
        ids.extend(merge_lowest_rank_first(stretch, self._stage2_pairs))
        if len(self._group_cache) < 100_000:
            self._group_cache[group] = ids
        return ids


def _kept_first_list(first: list[int], second: list[int], budget: int) -> int:
    """How many of ``first`` are among the ``budget`` most frequent of both count lists, each taken in order.

    Two sorted queues are merged, the more frequent head first (``first`` on ties), until ``budget`` are taken.
    """
    i = j = 0
    while i + j < budget and (i < len(first) or j < len(second)):
        if j >= len(second) or (i < len(first) and first[i] >= second[j]):
            i += 1
        else:
            j += 1
    return i
