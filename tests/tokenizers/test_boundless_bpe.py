"""BoundlessBPE's supermerges: hand-checked merges on tiny corpora, encoding rules and exact round trips."""

from __future__ import annotations

import random

import pytest
import regex

from llms_from_scratch.bpe import BPETokenizer
from llms_from_scratch.tokenizers.boundless import BoundlessBPETokenizer, _kept_first_list
from llms_from_scratch.tokenizers.superword import SuperBPETokenizer

EOT = "<|endoftext|>"

CORPUS = EOT.join(
    [
        "one of the best films of the year . it is one of the best !\n" * 3,
        "the end of the film is the best part of the film .\nat the end of the day , it is a film .\n" * 4,
        "a cat sat on the mat , and a dog sat on the log . is it one of the best ?\n" * 3,
    ]
)


def _pieces(tok: BoundlessBPETokenizer, text: str) -> list[str]:
    return [tok.decode([i]) for i in tok.encode(text)]


def test_a_frequent_supermerge_displaces_a_rare_ordinary_merge():
    # Chunks: " a" x3, " b" x3, " ." x3, " qz" x2; one run of words " a b a b a b".
    # Ordinary merges by count: " ." 3, " a" 3, " b" 3, " q" 2, " qz" 2. Supermerges once " a" and " b" are whole:
    # " a"+" b" 3, then " a b"+" a b" 2. Five merges: the three ordinary ones of count 3, then the supermerge of
    # count 3 beats the ordinary merges of count 2, and " q" (count 2) wins the tie against " a b a b".
    text = " a b" * 3 + " . qz . qz ."
    tok = BoundlessBPETokenizer().train(text, vocab_size=261, allowed_special=())
    assert [tok.vocab[new] for _, _, new in tok.merges] == [b" .", b" a", b" b", b" q", b" a b"]
    assert tok.merges[-1] == (257, 258, 260)
    assert (tok.n_stage1, tok.n_stage2) == (4, 1)
    assert _pieces(tok, " a b . qz") == [" a b", " .", " q", "z"]

    # One more token: " qz" (ordinary, count 2) and " a b a b" (count 2) tie; the ordinary merge goes first.
    bigger = BoundlessBPETokenizer().train(text, vocab_size=262, allowed_special=())
    assert [bigger.vocab[new] for _, _, new in bigger.merges] == [b" .", b" a", b" b", b" q", b" qz", b" a b"]


def test_supermerges_need_complete_pretokens():
    # " ab" becomes one token only with the fifth ordinary merge; without it, " ab cd" cannot be learned.
    text = "ab cd . ab cd . ab cd ."
    free = BoundlessBPETokenizer().train(text, vocab_size=262, allowed_special=())
    assert [free.vocab[new] for _, _, new in free.merges] == [b" .", b" c", b"ab", b" cd", b" ab", b" ab cd"]
    assert _pieces(free, "ab cd . ab cd") == ["ab", " cd", " .", " ab cd"]

    # Transition fixed after four ordinary merges: " ab" stays " " + "ab", "ab cd" occurs once, nothing to merge.
    fixed = BoundlessBPETokenizer().train(text, vocab_size=262, allowed_special=(), transition_vocab_size=260)
    assert (fixed.n_stage1, fixed.n_stage2) == (4, 0)
    assert _pieces(fixed, "ab cd . ab cd") == ["ab", " cd", " .", " ", "ab", " cd"]


@pytest.fixture(scope="module")
def boundless() -> BoundlessBPETokenizer:
    return BoundlessBPETokenizer().train(CORPUS, vocab_size=400)


def test_superwords_are_whole_words_only(boundless):
    assert boundless.n_stage2 > 0
    assert boundless.special_tokens == {EOT: 256 + len(boundless.merges)}
    superwords = [boundless.decode([new]) for _, _, new in boundless.merges[boundless.n_stage1 :]]
    assert " of the" in superwords and " one of the best" in superwords
    for word in superwords:  # two or more words, each letters with one leading space (or none, first)
        assert regex.fullmatch(r" ?\p{L}+( \p{L}+)+", word), word
    # ordinary merges stay inside a chunk: no space after another character
    for _, _, new in boundless.merges[: boundless.n_stage1]:
        assert not boundless.is_superword(new)


def test_supermerges_never_join_a_chunk_left_in_pieces():
    tok = BoundlessBPETokenizer().train("making of .\nmaking of .\nmaking of .", vocab_size=270, allowed_special=())
    assert "making of" in [tok.decode([new]) for _, _, new in tok.merges]
    assert _pieces(tok, "making of") == ["making of"]
    # in " remaking" the piece "making" is not a whole chunk, so it must not join " of"
    pieces = _pieces(tok, " remaking of")
    assert pieces[-1] == " of" and "".join(pieces) == " remaking of"


def test_ordinary_merges_are_plain_bpe_and_supermerges_shorten(boundless):
    plain = BPETokenizer().train(CORPUS, vocab_size=256 + boundless.n_stage1 + 1)
    assert boundless.merges[: boundless.n_stage1] == plain.merges
    # the supermerges only join tokens, so the corpus needs fewer tokens than with the ordinary merges alone
    assert len(boundless.encode(CORPUS, allowed_special="all")) < len(plain.encode(CORPUS, allowed_special="all"))


def test_round_trip(boundless):
    assert boundless.decode(boundless.encode(CORPUS, allowed_special="all")) == CORPUS
    rng = random.Random(0)
    words = ["the", " of the", " film", " best", " .", " ,", "\n", "  ", "é", "😀", "\t", "one", "42"]
    for _ in range(50):
        text = "".join(rng.choice(words) for _ in range(rng.randint(0, 40)))
        assert boundless.decode(boundless.encode(text)) == text
        text = "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 30)))
        assert boundless.decode(boundless.encode(text)) == text


def test_save_and_load(boundless, tmp_path):
    path = tmp_path / "boundless.json"
    boundless.save(path)
    loaded = BoundlessBPETokenizer.load(path)
    assert loaded.merges == boundless.merges and loaded.n_stage1 == boundless.n_stage1
    assert loaded.encode(CORPUS, allowed_special="all") == boundless.encode(CORPUS, allowed_special="all")
    with pytest.raises(ValueError, match="SuperBPETokenizer.save"):
        SuperBPETokenizer.load(path)


def test_errors():
    with pytest.raises(ValueError, match="too small"):
        BoundlessBPETokenizer().train("a b", vocab_size=200)
    with pytest.raises(ValueError, match="transition_vocab_size"):
        BoundlessBPETokenizer().train("a b", vocab_size=300, transition_vocab_size=301)
    with pytest.raises(ValueError, match="empty"):
        BoundlessBPETokenizer().train("", vocab_size=300)


def test_kept_first_list():
    assert _kept_first_list([5, 3, 2], [4, 1], 3) == 2  # 5, 4, 3
    assert _kept_first_list([5, 3, 2], [4, 1], 10) == 3  # everything fits
    assert _kept_first_list([2, 2], [2], 2) == 2  # ties go to the first list
    assert _kept_first_list([], [4], 1) == 0
