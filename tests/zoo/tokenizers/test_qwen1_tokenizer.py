"""Qwen1's tiktoken-format vocabulary reader.

``qwen.tiktoken`` itself is not in the offline mirror, so the test writes one in its format (base64 token
bytes and rank per line, rank = id) from the Qwen3 vocabulary, which shares Qwen1's 151,643 regular tokens
and ids. The tiktoken reader must then tokenize exactly like the merge-list Qwen3 tokenizer (itself tested
against `transformers`), and map Qwen1's own special tokens.
"""

from __future__ import annotations

import base64
import json

import pytest

from llms_from_scratch.data import fetch
from llms_from_scratch.tokenizers import qwen1_tokenizer, qwen3_tokenizer
from llms_from_scratch.tokenizers.bytes_map import token_bytes

CORPUS = [
    "Hello, world! It's 2024 and we're testing 12345 tokens.",
    "通义千问是阿里云研发的大语言模型。",
    "  leading spaces\n\n\ttabs and\r\nnewlines   ",
    "naïve café — e\u0301 (combining accent, NFC-normalized)",
    "def f(x):\n    return x ** 2  # 🙂",
]


@pytest.fixture(scope="module")
def qwen_tiktoken(tmp_path_factory):
    vocab = json.loads(fetch("qwen3-vocab").read_text(encoding="utf-8"))
    path = tmp_path_factory.mktemp("qwen1") / "qwen.tiktoken"
    lines = [f"{base64.b64encode(token_bytes(t)).decode()} {i}" for t, i in sorted(vocab.items(), key=lambda x: x[1])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_tiktoken_file_tokenizes_like_the_merge_list(qwen_tiktoken):
    ours, reference = qwen1_tokenizer(qwen_tiktoken), qwen3_tokenizer(instruct=False)
    for text in CORPUS:
        ids = ours.encode(text)
        assert ids == reference.encode(text)
        assert ours.decode(ids) == reference.decode(ids)


def test_qwen1_special_tokens_and_chat(qwen_tiktoken):
    chat = qwen1_tokenizer(qwen_tiktoken, chat=True)
    prompt = chat.apply_chat_template([{"role": "user", "content": "Hi"}])
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    ids = chat.encode(prompt + "<|extra_0|><|extra_204|><|endoftext|>")
    assert ids[0] == 151644 and ids.count(151645) == 1
    assert ids[-3:] == [151646, 151850, 151643]
    assert chat.eos_ids == (151645, 151643)
    with pytest.raises(ValueError, match="no chat format"):
        qwen1_tokenizer(qwen_tiktoken).apply_chat_template([{"role": "user", "content": "Hi"}])


def test_wrong_file_is_refused(tmp_path):
    bad = tmp_path / "tiny.tiktoken"
    bad.write_text(f"{base64.b64encode(b'a').decode()} 0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="151643 ranks"):
        qwen1_tokenizer(bad)
