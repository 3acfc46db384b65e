"""Byte-pair encoding from scratch: train a byte-level BPE tokenizer, or load OpenAI's GPT-2 one.

>>> tok = BPETokenizer.from_gpt2_files("vocab.bpe", "encoder.json")
>>> tok.encode("Hello, do you like tea?")          # the same ids as tiktoken.get_encoding("gpt2")
[15496, 11, 466, 345, 588, 8887, 30]
>>> small = BPETokenizer().train(text, vocab_size=1000, allowed_special={"<|endoftext|>"})

How it works, in three steps shared by training and encoding:

1. *Pre-tokenization.* GPT-2's regular expression cuts text into chunks (a word with its leading space, a run of
   digits, a run of punctuation, whitespace). Merges never cross a chunk boundary.
2. *Bytes.* Each chunk becomes its UTF-8 bytes; every byte has a token, so any text can be encoded.
3. *Merges.* Training repeatedly joins the most frequent adjacent pair of tokens into a new token. Encoding
   replays this: in each chunk it merges the adjacent pair whose joined bytes have the lowest rank (earliest
   merge), one occurrence at a time, leftmost first, until no adjacent pair forms a known token. This is the
   rule tiktoken applies, so GPT-2's files give tiktoken's ids exactly. Short chunks are simply rescanned after
   each merge; in longer ones a heap of candidate pairs over a linked list of pieces finds each next merge, so
   even a very long chunk (a run of one letter, a line of digits) is merged in ``O(n log n)``.
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Literal

import regex

from .files import atomic_path

# GPT-2's pre-tokenization pattern (OpenAI's encoder.py): common English contractions, then runs of letters,
# digits or other symbols with at most one leading space, then whitespace. ``\s+(?!\S)`` leaves the last space
# of a run for the next word, so " world" stays one chunk. The possessive forms (``++``) only make matching
# faster; they never change the split.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s+(?!\S)|\s+"""
END_OF_TEXT = "<|endoftext|>"
FORMAT_NAME = "llms-from-scratch-bpe"
FORMAT_VERSION = 1


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte, as used in ``vocab.bpe`` and ``encoder.json``.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes (controls, space, ...) are mapped in
    order to the characters from U+0100 on, so a space appears as ``Ġ`` and a newline as ``Ċ``.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def training_pieces(text: str, vocab_size: int, allowed_special: Collection[str]) -> tuple[list[str], list[str]]:
    """Check a training request and cut the text at its special tokens (no merge may span one): returns the
    special tokens, sorted, and the pieces of text between them."""
    specials = sorted(set(allowed_special))
    if vocab_size < 256 + len(specials):
        raise ValueError(
            f"vocab_size={vocab_size} is too small: the 256 byte tokens and {len(specials)} special token(s) "
            f"alone need {256 + len(specials)}"
        )
    if not text:
        raise ValueError("the training text is empty")
    pieces = regex.split("|".join(regex.escape(s) for s in specials), text) if specials else [text]
    return specials, pieces


class BPETokenizer:
    """A byte-level BPE tokenizer with GPT-2's pre-tokenization.

    ``vocab`` maps every id to its bytes, ``merges`` lists the learned merges in order as
    ``(left_id, right_id, new_id)``, and ``special_tokens`` maps strings such as ``<|endoftext|>`` to ids.
    """

    def __init__(self, pattern: str = GPT2_SPLIT_PATTERN):
        self.pattern = pattern
        self._split = regex.compile(pattern)
        self.byte_ids: list[int] = list(range(256))  # id of each byte value
        self.merges: list[tuple[int, int, int]] = []
        self.special_tokens: dict[str, int] = {}
        self._rebuild()

    # ------------------------------------------------------------------ construction

    def _rebuild(self) -> None:
        """Derive the lookup tables used by encode/decode from ``byte_ids``, ``merges`` and ``special_tokens``."""
        vocab = {self.byte_ids[b]: bytes([b]) for b in range(256)}
        for left, right, new in self.merges:
            vocab[new] = vocab[left] + vocab[right]
        for text, i in self.special_tokens.items():
            vocab[i] = text.encode("utf-8")
        self.vocab: dict[int, bytes] = vocab

        # Rank of a candidate merge = id of the token it makes (ids grow in merge order). Every way of cutting a
        # learned token into two known tokens counts as a candidate, not only the learned pair. That is tiktoken's
        # rule; it matters for vocabularies in which a token can be assembled in more than one way.
        special_ids = set(self.special_tokens.values())
        self._encoder = {b: i for i, b in vocab.items() if i not in special_ids}  # bytes -> id, no specials
        pair_to_id: dict[tuple[int, int], int] = {}
        for _, _, new in self.merges:
            token = vocab[new]
            for cut in range(1, len(token)):
                left, right = self._encoder.get(token[:cut]), self._encoder.get(token[cut:])
                if left is not None and right is not None:
                    pair_to_id[(left, right)] = new
        self._pair_to_id = pair_to_id
        self._special_regexes: dict[frozenset[str], regex.Pattern] = {}
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_gpt2_files(cls, vocab_bpe_path: str | os.PathLike, encoder_json_path: str | os.PathLike) -> BPETokenizer:
        """Load OpenAI's GPT-2 tokenizer (50,257 tokens) from its ``vocab.bpe`` and ``encoder.json``."""
        with open(encoder_json_path, encoding="utf-8") as f:
            encoder: dict[str, int] = json.load(f)
        with open(vocab_bpe_path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        if not lines or not lines[0].startswith("#version"):
            raise ValueError(f"{vocab_bpe_path} does not start with '#version': is it GPT-2's vocab.bpe?")

        tok = cls()
        byte_to_char = bytes_to_unicode()
        try:
            tok.byte_ids = [encoder[byte_to_char[b]] for b in range(256)]
            merges = []
            for line_no, line in enumerate(lines[1:], start=2):
                if not line.strip():
                    continue
                fields = line.split(" ")
                if len(fields) != 2:
                    raise ValueError(f"{vocab_bpe_path}, line {line_no}: expected two tokens separated by a space")
                left, right = fields
                merges.append((encoder[left], encoder[right], encoder[left + right]))
        except KeyError as exc:
            raise ValueError(
                f"{encoder_json_path} has no id for {exc.args[0]!r}; vocab.bpe and encoder.json must come from "
                f"the same tokenizer"
            ) from None
        if [new for _, _, new in merges] != sorted(new for _, _, new in merges):
            raise ValueError("the merges' token ids do not grow in merge order, which this tokenizer relies on")
        tok.merges = merges
        known = set(tok.byte_ids) | {new for _, _, new in merges}
        tok.special_tokens = {text: i for text, i in encoder.items() if i not in known}
        tok._rebuild()
        return tok

    # ------------------------------------------------------------------ training

    def train(
        self, text: str, vocab_size: int, allowed_special: Collection[str] = frozenset({END_OF_TEXT})
    ) -> BPETokenizer:
        """Learn merges from ``text`` until the vocabulary has ``vocab_size`` tokens; returns ``self``.

        Ids 0-255 are the bytes, then one id per merge, then the special tokens in ``allowed_special`` (which are
        cut out of the training text, so no merge spans them). Training stops early when no pair occurs twice.

        Pair counts are kept up to date incrementally: a merge only touches the chunks that contain the merged
        pair, so each step costs time in proportion to those chunks, not to the whole text.
        """
        specials, pieces = training_pieces(text, vocab_size, allowed_special)
        # Pre-tokenize and count identical chunks once: "the" may occur thousands of times but is merged once.
        chunk_counts = Counter(chunk for piece in pieces for chunk in self._split.findall(piece))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]  # each chunk as a list of token ids
        freqs = list(chunk_counts.values())

        self.byte_ids = list(range(256))
        self.merges = learn_merges(words, freqs, vocab_size - 256 - len(specials), first_id=256)

        first_special = 256 + len(self.merges)
        self.special_tokens = {s: first_special + k for k, s in enumerate(specials)}
        self._rebuild()
        return self

    # ------------------------------------------------------------------ encoding and decoding

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = self._cache.get(chunk)
        if ids is not None:
            return ids
        data = chunk.encode("utf-8")
        whole = self._encoder.get(data)
        if whole is not None:
            # A chunk that is itself a token is that token, even if no merge sequence would reach it.
            return [whole]
        parts = merge_lowest_rank_first([self.byte_ids[b] for b in data], self._pair_to_id)
        if len(self._cache) < 100_000:
            self._cache[chunk] = parts
        return parts

    def clear_cache(self) -> None:
        """Forget the ids of chunks seen so far (each distinct chunk is merged once, then looked up)."""
        self._cache.clear()

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` treating special-token strings as plain text."""
        ids: list[int] = []
        for chunk in self._split.findall(valid_unicode(text)):
            ids.extend(self._encode_chunk(chunk))
        return ids

    def encode(
        self,
        text: str,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Encode ``text`` to token ids, with tiktoken's rules for special tokens.

        Special tokens in ``allowed_special`` become their single id. By default any other special token found in
        the text is an error (it may be user text trying to inject one); pass ``disallowed_special=()`` to encode
        such strings as ordinary text instead.
        """
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(
                f"allowed_special names {sorted(unknown)}, which this tokenizer does not have; "
                f"its special tokens are {sorted(self.special_tokens)}"
            )
        disallowed = set(self.special_tokens) - allowed if disallowed_special == "all" else set(disallowed_special)
        if disallowed:
            match = self._special_regex(frozenset(disallowed)).search(text)
            if match:
                raise ValueError(
                    f"the text contains the special token {match.group()!r}, which is not allowed. Pass "
                    f"allowed_special={{{match.group()!r}}} to encode it as one token, or "
                    f"disallowed_special=() to encode it as plain text"
                )
        if not allowed:
            return self.encode_ordinary(text)

        ids: list[int] = []
        start = 0
        for match in self._special_regex(frozenset(allowed)).finditer(text):
            ids.extend(self.encode_ordinary(text[start : match.start()]))
            ids.append(self.special_tokens[match.group()])
            start = match.end()
        ids.extend(self.encode_ordinary(text[start:]))
        return ids

    def _special_regex(self, specials: frozenset[str]) -> regex.Pattern:
        """A pattern matching any of ``specials``, longest first so a special token containing another wins."""
        pattern = self._special_regexes.get(specials)
        if pattern is None:
            alternatives = sorted(specials, key=len, reverse=True)
            pattern = regex.compile("|".join(regex.escape(s) for s in alternatives))
            self._special_regexes[specials] = pattern
        return pattern

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        try:
            return b"".join(self.vocab[i] for i in ids)
        except KeyError as exc:
            raise ValueError(f"token id {exc.args[0]!r} is not in the vocabulary (ids 0-{len(self.vocab) - 1})") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Turn ids back into text; byte sequences that are not valid UTF-8 become U+FFFD, as in tiktoken."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    @property
    def n_vocab(self) -> int:
        return len(self.vocab)

    def mergeable_ranks(self) -> dict[bytes, int]:
        """Token bytes -> id for all non-special tokens: the table ``tiktoken.Encoding`` is built from."""
        return dict(self._encoder)

    # ------------------------------------------------------------------ saving and loading

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to a JSON file (written to a temporary file first, then renamed into place)."""
        path = Path(path)
        state = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "pattern": self.pattern,
            "byte_ids": self.byte_ids,
            "merges": [list(m) for m in self.merges],
            "special_tokens": self.special_tokens,
        }
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a tokenizer written by :meth:`save`."""
        with open(path, encoding="utf-8") as f:
            try:
                state = json.load(f)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} is not a tokenizer file written by BPETokenizer.save ({exc})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
            raise ValueError(f"{path} is not a tokenizer file written by BPETokenizer.save")
        if state.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path} has format version {state.get('version')}; this code reads {FORMAT_VERSION}")
        tok = cls(pattern=state["pattern"])
        tok.byte_ids = list(state["byte_ids"])
        tok.merges = [tuple(m) for m in state["merges"]]
        tok.special_tokens = dict(state["special_tokens"])
        tok._rebuild()
        return tok


# Chunks up to this many bytes (most words of ordinary text) are merged by rescanning, which is faster than
# setting up the heap for a handful of pairs; both give the same ids.
_SHORT_CHUNK = 10


def learn_merges(
    words: list[list[int]], freqs: list[int], n_merges: int, first_id: int, counts: list[int] | None = None
) -> list[tuple[int, int, int]]:
    """Learn up to ``n_merges`` merges over ``words`` (token-id lists, each seen ``freqs[w]`` times), in place.

    Returns the merges as ``(left_id, right_id, new_id)`` with new ids from ``first_id`` on; ``words`` is left
    holding the merged token lists. Stops early when no pair occurs twice. The loop behind
    :meth:`BPETokenizer.train` (see ``ch02/05_bpe-from-scratch``) and the superword stages of SuperBPE and
    BoundlessBPE, whose words already hold merged tokens: pair counts are updated only in the words that contain
    the merged pair. If ``counts`` is a list, the number of occurrences each merge joined is appended to it.
    """
    pair_counts: Counter[tuple[int, int]] = Counter()
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> indices of words holding it
    for w, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            where[pair].add(w)

    # Max-heap of (count, pair) with lazy deletion: stale entries are skipped when popped.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int, int]] = []
    while len(merges) < n_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg_count:
            continue  # stale: this pair's count changed after the entry was pushed
        if -neg_count < 2:
            break  # merging a pair seen once compresses nothing
        new_id = first_id + len(merges)
        merges.append((pair[0], pair[1], new_id))
        if counts is not None:
            counts.append(-neg_count)

        changed: set[tuple[int, int]] = set()
        for w in where.pop(pair):
            word, freq = words[w], freqs[w]
            # take the word's old pairs out, merge, then put its new pairs in
            for old in zip(word, word[1:]):
                pair_counts[old] -= freq
                changed.add(old)
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            words[w] = merged
            for new in zip(merged, merged[1:]):
                pair_counts[new] += freq
                where[new].add(w)
                changed.add(new)
        for p in changed:
            count = pair_counts[p]
            if count > 0:
                heapq.heappush(heap, (-count, p))
            else:
                del pair_counts[p]
                where.pop(p, None)
    return merges


def _merge_by_rescanning(parts: list[int], pair_to_id: dict[tuple[int, int], int]) -> list[int]:
    """The merge rule written plainly: after each merge, look at every adjacent pair again (``O(n^2)``)."""
    parts = list(parts)
    while len(parts) > 1:
        # the adjacent pair that makes the earliest-learned token; ``<`` keeps the leftmost on ties
        best_pos, best_id = -1, None
        for pos in range(len(parts) - 1):
            new = pair_to_id.get((parts[pos], parts[pos + 1]))
            if new is not None and (best_id is None or new < best_id):
                best_pos, best_id = pos, new
        if best_id is None:
            break
        parts[best_pos : best_pos + 2] = [best_id]
    return parts


def merge_lowest_rank_first(parts: list[int], pair_to_id: dict[tuple[int, int], int]) -> list[int]:
    """Merge a chunk's tokens the way tiktoken does, in ``O(n log n)`` for a chunk of ``n`` bytes.

    The rule: among all adjacent pairs that form a known token, merge the one with the lowest rank (the new
    token's id), the leftmost on ties; repeat until no pair forms a token. Rescanning every pair after each merge
    (:func:`_merge_by_rescanning`) costs ``O(n^2)``: minutes for a run of 100,000 identical letters. Instead the
    candidates wait in a heap ordered by (rank, start), and the pieces form a doubly linked list, so a merge only
    has to look at its two new neighbours. A piece is named by the byte index where it starts, which keeps the
    list's order, so the heap's tie-break on the start is the leftmost-first rule.

    Entries are never removed from the heap; an entry whose pair has since changed (a neighbour was merged away)
    is recognised when popped, because the pair now at that start no longer has the entry's rank, and skipped.
    """
    if len(parts) <= _SHORT_CHUNK:
        return _merge_by_rescanning(parts, pair_to_id)
    n = len(parts)
    ids = list(parts)  # ids[i]: the token of the piece that starts at byte i; -1 once merged into its left neighbour
    next_start = list(range(1, n + 1))  # n: no piece to the right
    prev_start = list(range(-1, n - 1))  # -1: no piece to the left
    heap = []
    for i in range(n - 1):
        rank = pair_to_id.get((ids[i], ids[i + 1]))
        if rank is not None:
            heap.append((rank, i))
    heapq.heapify(heap)

    while heap:
        rank, i = heapq.heappop(heap)
        j = next_start[i]
        if j >= n or pair_to_id.get((ids[i], ids[j])) != rank:
            continue  # stale: this pair was changed by an earlier merge
        # pieces i and j become one piece at i; j leaves the list
        ids[i], ids[j] = rank, -1
        k = next_start[j]
        next_start[i] = k
        if k < n:
            prev_start[k] = i
            right = pair_to_id.get((rank, ids[k]))
            if right is not None:
                heapq.heappush(heap, (right, i))
        h = prev_start[i]
        if h >= 0:
            left = pair_to_id.get((ids[h], rank))
            if left is not None:
                heapq.heappush(heap, (left, h))

    merged, i = [], 0
    while i < n:
        merged.append(ids[i])
        i = next_start[i]
    return merged


def valid_unicode(text: str) -> str:
    """Replace lone surrogates (which UTF-8 cannot encode) by U+FFFD, as tiktoken does."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
