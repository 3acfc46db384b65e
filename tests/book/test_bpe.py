"""The from-scratch BPE tokenizer: GPT-2's files give exactly tiktoken's ids; training, saving and loading."""

import csv
import json
from pathlib import Path

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from notebook_defs import load_notebook_definitions

from llms_from_scratch.bpe import END_OF_TEXT, GPT2_SPLIT_PATTERN, BPETokenizer, bytes_to_unicode
from llms_from_scratch.data import fetch, gpt2_encoding, read_text

BONUS = Path(__file__).resolve().parents[2] / "ch02" / "05_bpe-from-scratch"
HYPOTHESIS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def ours() -> BPETokenizer:
    return BPETokenizer.from_gpt2_files(fetch("gpt2-vocab-bpe"), fetch("gpt2-encoder-json"))


@pytest.fixture(scope="module")
def tiktoken_gpt2() -> tiktoken.Encoding:
    return gpt2_encoding()


# Text made of the pieces that stress a byte-level tokenizer: pre-tokenizer boundaries (spaces, newlines,
# contractions, digits, punctuation), multi-byte UTF-8 (CJK, emoji, combining marks) and control characters.
PIECES = st.sampled_from([
    " ", "  ", "\n", "\n\n", "\t", "\r\n", " " * 40, "\n" * 17, "'s", "'ll", "'RE", "'", "0", "123", "2024",
    "٣", "Hello", " world", "the", "Ġ", "naïve", "e\u0301", "\u0301\u0302", "日本語", "中文", "한국어", "🦙",
    "👍🏽", "👨‍👩‍👧", "\x00", "\x1f", "\x7f", "\u200b", "\u00a0", "\u3000", "\ufeff", "...", "?!", "--", "<|", "|>",
    "<|endoftext", "endoftext|>",
])
MIXED_TEXT = st.one_of(
    st.text(max_size=60),  # any code point (hypothesis leaves out lone surrogates)
    st.lists(st.one_of(PIECES, st.text(max_size=5)), max_size=25).map("".join),
)


def test_known_ids(ours):
    assert ours.n_vocab == 50257
    assert ours.special_tokens == {END_OF_TEXT: 50256}
    assert ours.encode("Hello, do you like tea?") == [15496, 11, 466, 345, 588, 8887, 30]
    assert ours.encode(f"Hi{END_OF_TEXT}", allowed_special={END_OF_TEXT}) == [17250, 50256]


@HYPOTHESIS
@given(text=MIXED_TEXT)
def test_matches_tiktoken_on_arbitrary_unicode(ours, tiktoken_gpt2, text):
    ids = ours.encode(text, disallowed_special=())
    assert ids == tiktoken_gpt2.encode(text, disallowed_special=())
    assert ours.decode(ids) == text


@HYPOTHESIS
@given(parts=st.lists(MIXED_TEXT, min_size=1, max_size=4))
def test_special_tokens_allowed_and_disallowed(ours, tiktoken_gpt2, parts):
    text = END_OF_TEXT.join(parts)
    # allowed: each <|endoftext|> becomes id 50256
    allowed = ours.encode(text, allowed_special={END_OF_TEXT})
    assert allowed == tiktoken_gpt2.encode(text, allowed_special={END_OF_TEXT})
    assert allowed.count(50256) == len(parts) - 1 + sum(p.count(END_OF_TEXT) for p in parts)
    assert ours.encode(text, allowed_special="all") == allowed
    assert ours.decode(allowed) == text
    # encoded as ordinary text
    plain = ours.encode(text, disallowed_special=())
    assert plain == tiktoken_gpt2.encode(text, disallowed_special=()) == ours.encode_ordinary(text)
    assert 50256 not in plain
    # disallowed by default: both refuse
    if len(parts) > 1:
        with pytest.raises(ValueError, match="special token '<|endoftext|>', which is not allowed"):
            ours.encode(text)
        with pytest.raises(ValueError):
            tiktoken_gpt2.encode(text)


def test_matches_tiktoken_on_long_runs(ours, tiktoken_gpt2):
    for text in [" " * 1000, "\n" * 500 + "x", "a" + " " * 300 + "b", "9" * 2000, "!" * 700, "🦙" * 200,
                 "\u0301" * 300, "ab" * 600, " \n" * 300, "\t \r\n" * 100 + "end"]:
        ids = ours.encode(text)
        assert ids == tiktoken_gpt2.encode(text), repr(text[:20])
        assert ours.decode(ids) == text


def test_every_code_point_alone_and_in_context(ours, tiktoken_gpt2):
    # one code point out of every 97 keeps the test fast while covering all planes and categories
    text = "".join(f"a{chr(cp)} {chr(cp)}1\n" for cp in range(0, 0x110000, 97) if not 0xD800 <= cp < 0xE000)
    assert ours.encode(text) == tiktoken_gpt2.encode(text)


def test_lone_surrogates_are_replaced_as_tiktoken_does(ours, tiktoken_gpt2):
    text = "a\ud800b \udfff"
    assert ours.encode(text) == tiktoken_gpt2.encode(text)


def _sms_messages() -> list[str]:
    with open(fetch("sms-spam-collection"), encoding="utf-8", newline="") as f:
        return [row[1] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def test_matches_tiktoken_on_the_data_sets(ours, tiktoken_gpt2):
    entries = json.loads(read_text("instruction-data"))
    texts = [read_text("the-verdict"), *_sms_messages(), *(e["instruction"] + "\n\n" + e["input"] + "\n\n" +
                                                          e["output"] for e in entries)]
    for text in texts:
        ids = ours.encode(text)
        assert ids == tiktoken_gpt2.encode(text)
        assert ours.decode(ids) == text


def test_decode_rejects_unknown_ids_and_repairs_partial_utf8(ours):
    with pytest.raises(ValueError, match="token id 50257 is not in the vocabulary"):
        ours.decode([50257])
    llama = ours.encode("🦙")
    assert len(llama) > 1 and ours.decode(llama[:1]) == "\ufffd"  # half an emoji is not valid UTF-8


def test_unknown_allowed_special_is_an_error(ours):
    with pytest.raises(ValueError, match="does not have"):
        ours.encode("hi", allowed_special={"<|im_start|>"})


def test_byte_mapping():
    mapping = bytes_to_unicode()
    assert len(set(mapping.values())) == 256
    assert mapping[ord(" ")] == "Ġ" and mapping[ord("\n")] == "Ċ" and mapping[ord("A")] == "A"


@pytest.fixture(scope="module")
def trained() -> BPETokenizer:
    return BPETokenizer().train(read_text("the-verdict"), vocab_size=1000, allowed_special={END_OF_TEXT})


def test_training_reaches_the_vocabulary_size(trained):
    assert trained.n_vocab == 1000
    assert len(trained.merges) == 1000 - 256 - 1
    assert trained.special_tokens == {END_OF_TEXT: 999}
    assert [new for _, _, new in trained.merges] == list(range(256, 999))
    # The Verdict's most frequent pair is " t" (space, 't'), then "he"
    assert trained.decode([256]) == " t" and trained.decode([257]) == "he"


def test_trained_tokenizer_equals_tiktoken_built_from_its_ranks(trained):
    reference = tiktoken.Encoding(name="verdict-1000", pat_str=GPT2_SPLIT_PATTERN,
                                  mergeable_ranks=trained.mergeable_ranks(), special_tokens=trained.special_tokens)
    for text in [read_text("the-verdict"), read_text("instruction-data")[:50_000], "Ünïcödé 🦙 text\n\n  x"]:
        ids = trained.encode(text, disallowed_special=())
        assert ids == reference.encode(text, disallowed_special=())
        assert trained.decode(ids) == text


@settings(max_examples=100, deadline=None)
@given(text=MIXED_TEXT)
def test_trained_round_trip(trained, text):
    assert trained.decode(trained.encode(text, allowed_special="all")) == text


def test_incremental_training_equals_recounting(trained):
    # the notebook's naive trainer recounts every pair after every merge; the merges must be identical
    nb = load_notebook_definitions(BONUS / "bpe-from-scratch.ipynb")
    naive = nb.train_bpe_naive(read_text("the-verdict"), n_merges=200)
    assert naive == [(a, b) for a, b, _ in trained.merges[:200]]


def test_save_load_round_trip(trained, ours, tmp_path):
    for tok in (trained, ours):
        path = tmp_path / "sub" / "tok.json"
        tok.save(path)
        loaded = BPETokenizer.load(path)
        assert loaded.vocab == tok.vocab and loaded.merges == tok.merges
        assert loaded.special_tokens == tok.special_tokens
        text = f"The Verdict{END_OF_TEXT} 🦙 naïve"
        assert loaded.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
        assert [p.name for p in path.parent.iterdir()] == ["tok.json"]  # no temporary file left behind


def test_training_and_loading_errors(tmp_path):
    with pytest.raises(ValueError, match="vocab_size=100 is too small"):
        BPETokenizer().train("some text", vocab_size=100)
    with pytest.raises(ValueError, match="training text is empty"):
        BPETokenizer().train("", vocab_size=300)
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a tokenizer file"):
        BPETokenizer.load(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not a tokenizer file"):
        BPETokenizer.load(bad)
    vocab = tmp_path / "vocab.bpe"
    vocab.write_text("no header\n")
    with pytest.raises(ValueError, match="#version"):
        BPETokenizer.from_gpt2_files(vocab, fetch("gpt2-encoder-json"))


def test_training_stops_when_no_pair_repeats():
    tok = BPETokenizer().train("abcdef", vocab_size=1000, allowed_special=())
    assert tok.merges == [] and tok.n_vocab == 256
    tok = BPETokenizer().train("aaaa", vocab_size=1000, allowed_special=())
    assert tok.n_vocab == 257 and tok.decode([256]) == "aa" and tok.encode("aaaa") == [256, 256]


def test_merge_rule_is_tiktokens_on_a_vocabulary_with_several_ways_to_build_a_token(tmp_path):
    # Two details of the merge rule that GPT-2's own files never exercise, checked on a hand-made vocabulary:
    # 1. "efg" was learned from ("e", "fg"), but "ef" is learned earlier, so encoding "efgh" merges "ef" first and
    #    reaches "efg" only because any split into two known tokens ("ef" + "g") is a candidate;
    # 2. "abcd" was learned from ("ab", "cd"), but "bc" is learned first, so merging "abcd" gets stuck at
    #    a + bc + d; a chunk that is itself a token becomes that token directly.
    a, b, c, d, e, f, g = (ord(ch) for ch in "abcdefg")
    merges = [[b, c, 256], [a, b, 257], [c, d, 258], [257, 258, 259], [e, f, 260], [f, g, 261], [e, 261, 262]]
    state = {"format": "llms-from-scratch-bpe", "version": 1, "pattern": GPT2_SPLIT_PATTERN,
             "byte_ids": list(range(256)), "special_tokens": {}, "merges": merges}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(state))
    tok = BPETokenizer.load(path)
    assert [tok.decode([i]) for i in range(256, 263)] == ["bc", "ab", "cd", "abcd", "ef", "fg", "efg"]
    reference = tiktoken.Encoding(name="tiny", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=tok.mergeable_ranks(),
                                  special_tokens={})
    for text in ["abcd", "abcdx", " abcd", "efgh", "xefg", "efg abcd efgefg", "cdab"]:
        assert tok.encode(text) == reference.encode(text), text
    assert tok.encode("efgh") == [262, ord("h")]
    assert tok.encode("abcd") == [259] and tok.encode("abcdx") == [a, 256, d, ord("x")]
