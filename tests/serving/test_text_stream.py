"""``TextStream`` turns generated ids into text pieces whose concatenation is the decoded reply, for byte-level
and SentencePiece tokenizers, with characters split over several tokens, and decodes a bounded window per token
(issue 15: a long reply must not get quadratically slower)."""

from __future__ import annotations

import random

import pytest

from llms_from_scratch.serving.generation import TextStream
from llms_from_scratch.tokenizers import ChatFormat, qwen3_tokenizer

TEXTS = ["Hello, world! Every effort moves you.", "  two leading spaces\n\nand blank lines  ",
         "日本語のテキスト 🤖🦙 emoji, ü, é and ß", "a" * 300, "x  y   z\tq\r\n end"]


class CountingTokenizer:
    """Wraps a tokenizer and records how many ids each ``decode`` call received."""

    def __init__(self, inner) -> None:
        self.inner, self.sizes = inner, []

    def decode(self, ids, skip_special=False):
        self.sizes.append(len(ids))
        return self.inner.decode(ids, skip_special=skip_special)


def _sentencepiece(tmp_path):
    pytest.importorskip("sentencepiece")
    from tokenizer_files import train_sentencepiece

    from llms_from_scratch.tokenizers import SentencePieceBPETokenizer
    from llms_from_scratch.tokenizers.sentencepiece_model import read_sentencepiece_model

    spec = read_sentencepiece_model(train_sentencepiece(tmp_path / "sp.model"))
    return SentencePieceBPETokenizer("llama2", spec.pieces, spec.types, scores=spec.scores, prefix="always",
                                     chat_format=ChatFormat("llama2"))


@pytest.fixture(params=["qwen3", "sentencepiece"])
def tokenizer(request, tmp_path):
    return qwen3_tokenizer() if request.param == "qwen3" else _sentencepiece(tmp_path)


def _streamed(tokenizer, ids):
    stream = TextStream(tokenizer)
    return "".join(stream.push(i) for i in ids)


@pytest.mark.parametrize("text", TEXTS)
def test_the_pieces_add_up_to_the_decoded_reply(tokenizer, text):
    ids = tokenizer.encode(text)
    assert _streamed(tokenizer, ids) == tokenizer.decode(ids, skip_special=True)


def test_random_token_runs_add_up_too(tokenizer):
    rng = random.Random(0)
    for _ in range(20):
        ids = tokenizer.encode(rng.choice(TEXTS))
        ids = ids[rng.randrange(len(ids)):]  # start anywhere, even inside a character
        expected = tokenizer.decode(ids, skip_special=True)
        if expected.endswith("\ufffd"):
            continue  # the reply ends inside a character: the stream rightly holds that part back
        assert _streamed(tokenizer, ids) == expected


def test_each_token_decodes_a_bounded_window():
    tokenizer = CountingTokenizer(qwen3_tokenizer())
    ids = tokenizer.inner.encode("Every effort moves you forward. " * 80)
    assert len(ids) > 400
    assert _streamed(tokenizer, ids) == tokenizer.inner.decode(ids, skip_special=True)
    assert max(tokenizer.sizes) <= 8  # before: the last call decoded every id of the reply
