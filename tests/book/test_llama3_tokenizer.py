"""``llama3.Llama3Tokenizer``, ``ChatFormat`` and ``clean_text`` on Meta's real ``tokenizer.model``.

The file comes through the data layer (cache, ``$LLMS_DATA_MIRROR``, or Meta's repository). The references are
the ids Meta's tokenizer gives for a known sentence and the zoo's independent tokenizer and chat format.
"""

from __future__ import annotations

import pytest

from llms_from_scratch.data import AssetUnavailableError, fetch
from llms_from_scratch.llama3 import ChatFormat, Llama3Tokenizer, clean_text
from llms_from_scratch.tokenizers import llama3_tokenizer

CORPUS = [
    "This is a test sentence.",
    "Hello, world!  Two spaces, a tab\tand a newline\n\nthen more.",
    "Numbers: 1 12 123 1234 12345 3.14159 and 1,000,000.",
    "Contractions: I'm, you're, we've, they'll, she'd, it's, DON'T.",
    "Unicode: naïve café, Straße, 東京, Москва, emoji 🙂👍.",
    "Code: def f(x):\n    return x ** 2  # square\r\n",
    "   leading and trailing spaces   ",
    "",
]


@pytest.fixture(scope="module")
def path():
    try:
        return fetch("llama3-tokenizer", quiet=True)
    except AssetUnavailableError as exc:
        pytest.skip(f"Meta's Llama 3 tokenizer.model is not available offline (set LLMS_DATA_MIRROR): {exc}")


@pytest.fixture(scope="module")
def tokenizer(path):
    return Llama3Tokenizer(path)


def test_known_sentence_with_bos_and_eos(tokenizer):
    ids = tokenizer.encode("This is a test sentence.", bos=True, eos=True)
    assert ids == [128000, 2028, 374, 264, 1296, 11914, 13, 128001]
    assert tokenizer.decode(ids) == "<|begin_of_text|>This is a test sentence.<|end_of_text|>"


def test_equals_the_zoo_tokenizer_and_round_trips(tokenizer, path):
    zoo = llama3_tokenizer(path=str(path))
    for text in CORPUS:
        ids = tokenizer.encode(text)
        assert ids == zoo.encode(text, allow_special=False), text
        assert tokenizer.decode(ids) == text
    assert tokenizer.special_tokens == zoo.special_tokens  # Meta's names for all 256 special ids
    assert tokenizer.special is tokenizer.special_tokens
    assert len(tokenizer.special_tokens) == 256 and min(tokenizer.special_tokens.values()) == 128000


def test_special_token_text_is_plain_text_unless_allowed(tokenizer):
    text = "a<|eot_id|>b"
    assert 128009 not in tokenizer.encode(text)
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.encode(text, allowed_special="all") == tokenizer.encode("a") + [128009] + tokenizer.encode("b")


def test_chat_format_is_the_llama3_header_layout(tokenizer):
    chat = ChatFormat(tokenizer)
    ids = chat.encode("What is the capital of France?  ")
    expected = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert ids == tokenizer.encode(expected, allowed_special="all")
    assert chat.decode(ids) == expected
    assert ids[:3] == [128000, 128006, 9125]  # begin_of_text, start_header_id, "system"


def test_chat_format_equals_the_zoo_and_takes_other_system_prompts(tokenizer, path):
    zoo = llama3_tokenizer(path=str(path))
    for system in ("Answer in French.", "You are a pirate.\nSpeak like one."):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": "Tell me a story."}]
        expected = zoo.encode(zoo.chat_format.render(messages))
        assert ChatFormat(tokenizer).encode("Tell me a story.", system_message=system) == expected
        assert ChatFormat(tokenizer, default_system=system).encode("Tell me a story.") == expected


def test_clean_text_keeps_the_answer_after_the_assistant_header(tokenizer):
    chat = ChatFormat(tokenizer)
    prompt = chat.encode("What is the capital of France?")
    answer = tokenizer.encode(" The capital of France is Paris. \n")
    assert clean_text(chat.decode(prompt + answer)) == "The capital of France is Paris."
    assert clean_text("no header here ") == "no header here "
    assert clean_text("Q: x\nA:  y ", header_end="A:") == "y"


def test_missing_file_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetch\\('llama3-tokenizer'\\)"):
        Llama3Tokenizer(tmp_path / "tokenizer.model")
