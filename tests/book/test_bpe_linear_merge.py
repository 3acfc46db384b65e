"""The from-scratch BPE's merge loop: the same ids as the quadratic rescanning loop, in O(n log n) per chunk.

The oracle below is the straightforward rule, written the slow way on purpose: after every merge, look at every
adjacent pair again and merge the lowest-ranked one (the leftmost on ties). The tokenizer must give exactly its
ids, and tiktoken's, on random and adversarial text, for GPT-2's vocabulary, for a vocabulary trained on
repetitive text (many ties) and for a hand-made vocabulary in which tokens can be assembled in several ways.
"""

from __future__ import annotations

import json
import random

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llms_from_scratch.bpe as bpe_module
from llms_from_scratch.bpe import GPT2_SPLIT_PATTERN, BPETokenizer
from llms_from_scratch.data import fetch, gpt2_encoding

HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def quadratic_merge(parts: list[int], pair_to_id: dict[tuple[int, int], int]) -> list[int]:
    """The reference rule: rescan all pairs after each merge; lowest rank wins, leftmost on ties."""
    parts = list(parts)
    while len(parts) > 1:
        candidates = [(pair_to_id[pair], pos) for pos, pair in enumerate(zip(parts, parts[1:])) if pair in pair_to_id]
        if not candidates:
            break
        rank, pos = min(candidates)
        parts[pos : pos + 2] = [rank]
    return parts


def oracle_encode(tok: BPETokenizer, text: str) -> list[int]:
    """``tok.encode_ordinary`` with the quadratic merge (same pre-tokenizer, same whole-chunk shortcut)."""
    ids: list[int] = []
    for chunk in tok._split.findall(text):
        data = chunk.encode("utf-8")
        whole = tok._encoder.get(data)
        ids += [whole] if whole is not None else quadratic_merge([tok.byte_ids[b] for b in data], tok._pair_to_id)
    return ids


def reference_tiktoken(tok: BPETokenizer, name: str) -> tiktoken.Encoding:
    return tiktoken.Encoding(name=name, pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=tok.mergeable_ranks(),
                             special_tokens={})


@pytest.fixture(scope="module")
def gpt2() -> BPETokenizer:
    return BPETokenizer.from_gpt2_files(fetch("gpt2-vocab-bpe"), fetch("gpt2-encoder-json"))


@pytest.fixture(scope="module")
def repetitive() -> BPETokenizer:
    # runs of one or two letters and digits: merges such as "aa", "aaaa", "ab", "abab" whose candidates tie often
    text = " ".join(["a" * n for n in range(1, 40)] + ["ab" * n for n in range(1, 30)] + ["aab" * n for n in range(1, 20)]
                    + ["1" * n for n in range(1, 25)] + ["ba" * n + "a" for n in range(1, 15)]) * 3
    return BPETokenizer().train(text, vocab_size=400, allowed_special=())


@pytest.fixture(scope="module")
def ambiguous(tmp_path_factory) -> BPETokenizer:
    # tokens reachable by several cuts: "abcd" learned as ab+cd after "bc"; "efg" as e+fg after "ef"; "aaa" twice
    a, b, c, d, e, f, g = (ord(ch) for ch in "abcdefg")
    merges = [[b, c, 256], [a, b, 257], [c, d, 258], [257, 258, 259], [e, f, 260], [f, g, 261], [e, 261, 262],
              [a, a, 263], [263, a, 264], [264, 264, 265], [256, d, 266], [a, 266, 267]]
    state = {"format": "llms-from-scratch-bpe", "version": 1, "pattern": GPT2_SPLIT_PATTERN,
             "byte_ids": list(range(256)), "special_tokens": {}, "merges": merges}
    path = tmp_path_factory.mktemp("ambiguous") / "tok.json"
    path.write_text(json.dumps(state))
    return BPETokenizer.load(path)


ADVERSARIAL = ["", "a", "aa", "aaa", "a" * 257, "a" * 1000 + "b", "b" + "a" * 999, "ab" * 400, "aab" * 300,
               "abcd" * 200, "efg" * 300 + "h", "abcdefg" * 100, "1" * 999, " " * 500 + "x", "é" * 300, "🦙" * 120,
               "ba" * 333 + "a", "aaaab" * 150, "\u0301" * 200, "x" * 3 + "a" * 64 + "x" * 3]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: f"{t[:6]!r}x{len(t)}")
def test_adversarial_strings_give_the_quadratic_loops_ids_and_tiktokens(gpt2, repetitive, ambiguous, text):
    for tok, name in ((gpt2, "gpt2"), (repetitive, "repetitive"), (ambiguous, "ambiguous")):
        tok.clear_cache()
        ids = tok.encode_ordinary(text)
        assert ids == oracle_encode(tok, text), name
        assert ids == reference_tiktoken(tok, name).encode_ordinary(text), name
    assert gpt2.encode_ordinary(text) == gpt2_encoding().encode_ordinary(text)


# letters the three vocabularies merge a lot, with spaces and digits to cut chunks of every length
SMALL_ALPHABET = st.text(alphabet="aaaabbcdefg1 ", max_size=300)
ANY_TEXT = st.text(max_size=80)


@HYPOTHESIS
@given(text=st.one_of(SMALL_ALPHABET, ANY_TEXT))
def test_random_strings_give_the_quadratic_loops_ids(gpt2, repetitive, ambiguous, text):
    for tok in (gpt2, repetitive, ambiguous):
        tok.clear_cache()
        assert tok.encode_ordinary(text) == oracle_encode(tok, text)


@HYPOTHESIS
@given(text=SMALL_ALPHABET)
def test_random_strings_give_tiktokens_ids(repetitive, ambiguous, text):
    for tok, name in ((repetitive, "repetitive"), (ambiguous, "ambiguous")):
        tok.clear_cache()
        assert tok.encode_ordinary(text) == reference_tiktoken(tok, name).encode_ordinary(text)


def test_the_heap_loop_alone_equals_the_oracle_on_short_chunks_too(gpt2, repetitive, ambiguous, monkeypatch):
    # encode hands chunks of a few bytes to the plain rescanning loop; here the heap loop gets every length
    monkeypatch.setattr(bpe_module, "_SHORT_CHUNK", 0)
    rng = random.Random(0)
    for tok in (gpt2, repetitive, ambiguous):
        for _ in range(300):
            data = "".join(rng.choice("aaabbcdefg") for _ in range(rng.randrange(0, 40))).encode()
            parts = [tok.byte_ids[b] for b in data]
            assert bpe_module.merge_lowest_rank_first(parts, tok._pair_to_id) == quadratic_merge(parts,
                                                                                                  tok._pair_to_id)


class CountingDict(dict):
    """The pair table, counting how often the merge loop looks a pair up."""

    lookups = 0

    def get(self, key, default=None):
        self.lookups += 1
        return super().get(key, default)


@pytest.mark.parametrize("unit", ["a", "ab", "9"])
def test_merge_work_grows_linearly_with_chunk_length(gpt2, unit):
    # Every merge in the quadratic loop rescans all pairs: n^2 / 2 lookups for a run of n letters (2 million
    # at 2,000). The heap loop looks up each starting pair once, each heap entry once more when it is popped, and
    # the two new pairs of each merge: n + (n + 2 * merges) + 2 * merges < 6n lookups, as there are fewer than n merges.
    counts = {}
    original = gpt2._pair_to_id
    try:
        for n in (2_000, 4_000):
            gpt2._pair_to_id = CountingDict(original)
            gpt2.clear_cache()
            text = unit * (n // len(unit))
            assert gpt2.encode_ordinary(text) == gpt2_encoding().encode_ordinary(text)
            counts[n] = gpt2._pair_to_id.lookups
    finally:
        gpt2._pair_to_id = original
        gpt2.clear_cache()
    assert 2_000 <= counts[2_000] <= 6 * 2_000, counts
    assert counts[4_000] <= 6 * 4_000 and counts[4_000] / counts[2_000] < 2.5, counts


def test_a_run_of_100k_letters_encodes_as_tiktoken_does(gpt2):
    # the old loop needed minutes for this one chunk; the heap loop a fraction of a second
    text = "a" * 100_000
    gpt2.clear_cache()
    assert gpt2.encode(text) == gpt2_encoding().encode(text)
