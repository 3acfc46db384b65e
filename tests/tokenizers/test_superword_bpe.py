"""SuperBPE's two-stage training, its encoding, and the compression metrics."""

from __future__ import annotations

import math
import random
import re
from collections import Counter

import pytest

from llms_from_scratch.bpe import BPETokenizer
from llms_from_scratch.tokenizers.efficiency import bytes_per_token, renyi_efficiency, renyi_entropy, token_counts
from llms_from_scratch.tokenizers.superword import SuperBPETokenizer

EOT = "<|endoftext|>"

# A small English text with repeated phrases, sentence ends, newlines and a document separator.
CORPUS = EOT.join(
    [
        "one of the best films of the year . it is one of the best !\n" * 3,
        "the end of the film is the best part of the film .\nat the end of the day , it is a film .\n" * 4,
        "a cat sat on the mat , and a dog sat on the log . is it one of the best ?\n" * 3,
    ]
)


def _random_text(rng: random.Random, n: int) -> str:
    """Printable ASCII, whitespace of all kinds, Latin, Greek, CJK, emoji and combining marks, no lone surrogates."""
    alphabets = [
        [chr(c) for c in range(32, 127)],
        [" ", "  ", "\n", "\t", "\r\n", " \n "],
        [chr(c) for c in range(0xC0, 0x250)],
        [chr(c) for c in range(0x391, 0x3CA)],
        [chr(c) for c in range(0x4E00, 0x4E40)],
        ["😀", "👍🏽", "e\u0301", "\u200d", "\ufeff"],
        ["the", " of the", " film", " .", " ,"],
    ]
    return "".join(rng.choice(rng.choice(alphabets)) for _ in range(n))


@pytest.fixture(scope="module")
def superbpe() -> SuperBPETokenizer:
    return SuperBPETokenizer().train(CORPUS, vocab_size=340, transition_vocab_size=290)


def test_stage1_is_plain_bpe_up_to_the_transition(superbpe):
    plain = BPETokenizer().train(CORPUS, vocab_size=290)
    assert superbpe.n_stage1 == len(plain.merges) == 290 - 256 - 1
    assert superbpe.merges[: superbpe.n_stage1] == plain.merges
    assert superbpe.n_stage2 > 0
    # the special token comes after all merges, as in BPETokenizer
    assert superbpe.special_tokens == {EOT: 256 + len(superbpe.merges)}
    assert superbpe.n_vocab == 340


def test_stage2_learns_tokens_that_cross_whitespace():
    text = "one of the best films .\n" * 50 + "the best of the rest .\n" * 20
    plain = BPETokenizer().train(text, vocab_size=330)
    superbpe = SuperBPETokenizer().train(text, vocab_size=330, transition_vocab_size=290)

    assert not any(re.search(rb"\S\s", token) for token in plain.vocab.values())  # plain BPE has no superwords
    superwords = {superbpe.vocab[i] for i in superbpe.vocab if superbpe.is_superword(i)}
    assert b"one of the best films" in superwords
    # stage 2 never merges across a sentence end or a line break
    assert superbpe.encode("one of the best films .\n") != superbpe.encode("one of the best films")
    pieces = [superbpe.decode([i]) for i in superbpe.encode("one of the best films .\n")]
    assert pieces == ["one of the best films", " .", "\n"]


def test_transition_at_the_final_size_is_plain_bpe():
    plain = BPETokenizer().train(CORPUS, vocab_size=330)
    same = SuperBPETokenizer().train(CORPUS, vocab_size=330, transition_vocab_size=330)
    assert same.merges == plain.merges and same.n_stage2 == 0
    assert same.encode(CORPUS, allowed_special="all") == plain.encode(CORPUS, allowed_special="all")


def test_round_trip_on_arbitrary_text(superbpe):
    rng = random.Random(0)
    for _ in range(30):
        text = _random_text(rng, rng.randrange(0, 400))
        assert superbpe.decode(superbpe.encode(text)) == text
    # special tokens as single ids between ordinary text
    text = "the end of the film" + EOT + " é 😀 one of the best ." + EOT
    ids = superbpe.encode(text, allowed_special={EOT})
    assert ids.count(superbpe.special_tokens[EOT]) == 2
    assert superbpe.decode(ids) == text
    with pytest.raises(ValueError, match="special token"):
        superbpe.encode(text)


def _apply_merges_one_by_one(ids: list[int], merges: list[tuple[int, int, int]]) -> list[int]:
    """The training-time rule: each merge in turn replaces every occurrence of its pair, left to right."""
    for left, right, new in merges:
        merged, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and ids[i] == left and ids[i + 1] == right:
                merged.append(new)
                i += 2
            else:
                merged.append(ids[i])
                i += 1
        ids = merged
    return ids


def test_stage2_encoding_applies_the_merges_in_rank_order(superbpe):
    rng = random.Random(1)
    words = CORPUS.replace(EOT, " ").replace("\n", " ").split(" ")
    stage2 = superbpe.merges[superbpe.n_stage1 :]
    for _ in range(50):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randrange(1, 25)))
        for group in superbpe.groups(sentence):
            stage1_ids = [i for chunk in group for i in superbpe._encode_chunk(chunk)]
            assert superbpe._encode_group(group) == _apply_merges_one_by_one(stage1_ids, stage2)


def test_encoding_compresses_the_training_text_beyond_plain_bpe(superbpe):
    plain = BPETokenizer().train(CORPUS, vocab_size=340)
    text = CORPUS.replace(EOT, "")
    assert len(superbpe.encode(text)) < len(plain.encode(text))


def test_save_and_load_keep_both_stages(superbpe, tmp_path):
    path = tmp_path / "superbpe.json"
    superbpe.save(path)
    loaded = SuperBPETokenizer.load(path)
    assert loaded.merges == superbpe.merges and loaded.n_stage1 == superbpe.n_stage1
    assert loaded.encode(CORPUS, allowed_special="all") == superbpe.encode(CORPUS, allowed_special="all")
    plain_path = tmp_path / "plain.json"
    BPETokenizer().save(plain_path)
    with pytest.raises(ValueError, match="SuperBPETokenizer.save"):
        SuperBPETokenizer.load(plain_path)


def test_transition_beyond_vocab_size_is_an_error():
    with pytest.raises(ValueError, match="transition_vocab_size"):
        SuperBPETokenizer().train(CORPUS, vocab_size=300, transition_vocab_size=400)


def test_renyi_entropy_and_efficiency_by_hand():
    counts = Counter({7: 2, 8: 1, 9: 1})  # p = 1/2, 1/4, 1/4
    # sum p^2.5 = 2^-2.5 + 2 * 2^-5 = 0.1767767 + 0.0625 = 0.2392767; H = ln(0.2392767) / (1 - 2.5)
    assert renyi_entropy(counts, alpha=2.5) == pytest.approx(0.9534231, abs=1e-6)
    assert renyi_efficiency(counts, vocab_size=8, alpha=2.5) == pytest.approx(0.9534231 / math.log(8), abs=1e-6)
    # alpha = 1 is Shannon entropy: 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2
    assert renyi_entropy(counts, alpha=1) == pytest.approx(1.5 * math.log(2))
    # alpha = 2 is the collision entropy: -ln(1/4 + 1/16 + 1/16) = ln(8/3)
    assert renyi_entropy(counts, alpha=2) == pytest.approx(math.log(8 / 3))
    # a uniform distribution over the whole vocabulary is perfectly efficient for every order
    assert renyi_efficiency(Counter(range(16)), vocab_size=16, alpha=2.5) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="empty"):
        renyi_entropy(Counter())


def test_bytes_per_token_and_token_counts():
    def encode(text):  # one token per character
        return [ord(c) for c in text]

    texts = ["abcd", "é", ""]  # 4 + 2 + 0 bytes, 5 tokens
    assert bytes_per_token(texts, encode) == pytest.approx(6 / 5)
    assert token_counts(["aab", "b"], encode) == Counter({ord("a"): 2, ord("b"): 2})
    with pytest.raises(ValueError, match="no tokens"):
        bytes_per_token([""], encode)
