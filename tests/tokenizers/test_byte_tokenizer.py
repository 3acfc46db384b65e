"""The byte tokenizer: exact round trips for any text, special tokens, clear errors."""

import pytest

from llms_from_scratch.tokenizers.bytes import END_OF_TEXT, ByteTokenizer

TEXTS = [
    "",
    "hello, world",
    "naïve café — 東京 🎬\n\ttabs and\r\nnewlines",
    "\x00\x7f control bytes",
    "a" * 1000,
]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_is_exact_and_ids_are_the_utf8_bytes(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids == list(text.encode("utf-8"))
    assert all(0 <= i < 256 for i in ids)
    assert tok.decode(ids) == text


def test_every_byte_value_round_trips_through_decode_bytes():
    tok = ByteTokenizer()
    assert tok.decode_bytes(range(256)) == bytes(range(256))
    assert tok.n_vocab == 256


def test_special_tokens_sit_above_the_bytes_and_only_when_allowed():
    tok = ByteTokenizer(special_tokens=[END_OF_TEXT, "<|pad|>"])
    assert tok.n_vocab == 258
    text = f"one{END_OF_TEXT}two"
    assert tok.encode(text, allowed_special={END_OF_TEXT}) == [*b"one", 256, *b"two"]
    assert tok.encode(text) == list(text.encode("utf-8"))  # not allowed: plain bytes, never the special id
    assert tok.decode(tok.encode(text, allowed_special={END_OF_TEXT})) == text
    assert tok.decode([257]) == "<|pad|>"


def test_unknown_ids_specials_and_unencodable_text_are_errors():
    tok = ByteTokenizer()
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([256])
    with pytest.raises(ValueError, match="does not have"):
        tok.encode("x", allowed_special={END_OF_TEXT})
    with pytest.raises(ValueError, match="lone surrogate"):
        tok.encode("bad \ud800 text")
    with pytest.raises(ValueError, match="repeat"):
        ByteTokenizer(special_tokens=["<a>", "<a>"])


def test_a_character_cut_in_two_decodes_to_the_replacement_character():
    tok = ByteTokenizer()
    assert tok.decode(tok.encode("é")[:1]) == "\ufffd"
