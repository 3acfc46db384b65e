"""The book's ``Qwen3Tokenizer`` against `transformers` and the zoo's Qwen3 tokenizer, on real Qwen3 files.

The Hugging Face repositories ship ``tokenizer.json``; the offline mirror holds the files it is built from
(``vocab.json`` and ``merges.txt``). `transformers`' Qwen2 tokenizer converts them, with the 26 special tokens
from ``<|endoftext|>`` (151643) on, NFC normalization and Qwen's pre-tokenizer regex, into a ``tokenizer.json``,
which ``Qwen3Tokenizer`` then reads with the `tokenizers` library.

The chat format is compared with `transformers`' ``apply_chat_template``. The official Jinja template is not
available offline, so the template below, written here, states its documented behaviour for the turns that
``Qwen3Tokenizer`` produces: each message as ``<|im_start|>{role}\\n{content}<|im_end|>\\n``; with
``add_generation_prompt`` the assistant header; with ``enable_thinking=False`` after it an empty think block.
The zoo's chat format (``llms_from_scratch.tokenizers``, checked elsewhere) is the independent second reference.
"""

from __future__ import annotations

import unicodedata

import pytest

from llms_from_scratch.data import fetch
from llms_from_scratch.qwen3 import Qwen3Tokenizer
from llms_from_scratch.tokenizers import qwen3_tokenizer

transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

CHATML_WITH_THINKING_SWITCH = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)

CORPUS = [
    "Give me a short introduction to large language models.",
    "Hello, do you like tea? I'm sure they'll say it's fine; we've DONE it, haven't we?",
    "Numbers: 7, 42, 123, 2024, 1234567, 3.14159, -0.5e10, 00042 and 1,000,000.",
    "  leading spaces,   runs   of spaces\tand\ttabs\n\n\nand blank lines\r\nwith CRLF  \n",
    "Café naïve résumé — “quotes” ‘single’ … ½ ¾ ² №",
    "e\u0301 versus \u00e9 and A\u030a versus Å: NFC joins the combining marks",
    "日本語のテキスト、中文文本和한국어 텍스트。通义千问",
    "Emoji 🤖🚀👍🏽 and flags 🇫🇷 plus a zero-width\u200bspace",
    "مرحبا بالعالم — שלום עולם — Привет, мир! Ελληνικά",
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment\n\tprint(f\"{x!r:>10}\")",
    "<|endoftext|>special tokens inside text<|im_start|>user\nhi<|im_end|>",
    "<think>\nreasoning\n</think>\n\nanswer<tool_call>{\"name\": \"f\"}</tool_call>",
    "x" * 60 + " " + "ab" * 30,
    "",
    " ",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """`transformers`' tokenizer built from the mirror's Qwen3 files, and the folder holding its tokenizer.json."""
    zoo = qwen3_tokenizer()
    ref = transformers.Qwen2Tokenizer(vocab=str(fetch("qwen3-vocab")), merges=str(fetch("qwen3-merges")))
    specials = sorted(zoo.special_tokens, key=zoo.special_tokens.get)
    ref.add_special_tokens({"additional_special_tokens": [t for t in specials if t != "<|endoftext|>"]})
    assert all(ref.convert_tokens_to_ids(t) == i for t, i in zoo.special_tokens.items())
    ref.eos_token = "<|im_end|>"  # as in the instruct repositories' tokenizer_config.json
    folder = tmp_path_factory.mktemp("qwen3-tokenizer")
    ref.save_pretrained(folder)
    return ref, folder


@pytest.fixture(scope="module")
def ours(reference):
    """One Qwen3Tokenizer for the module (reading tokenizer.json takes a second); tests set its switches."""
    return Qwen3Tokenizer(str(reference[1] / "tokenizer.json"))


def test_plain_text_equals_transformers_and_the_zoo(reference, ours):
    ref, _ = reference
    ours.apply_chat_template = False
    zoo = qwen3_tokenizer()
    for text in CORPUS:
        ids = ours.encode(text)
        assert ids == ref.encode(text, add_special_tokens=False), text
        assert ids == zoo.encode(text), text
        assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=False), text
    assert ours.decode(ours.encode("e\u0301")) == "\u00e9"  # NFC before encoding
    assert ours.encode("Hello, world!") == [9707, 11, 1879, 0]


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("thinking", [True, False])
def test_chat_template_equals_transformers(reference, ours, add_generation_prompt, thinking):
    ref, _ = reference
    ours.apply_chat_template, ours.add_generation_prompt, ours.add_thinking = True, add_generation_prompt, thinking
    zoo = qwen3_tokenizer()
    for prompt in CORPUS[:12]:
        messages = [{"role": "user", "content": prompt}]
        text = ref.apply_chat_template(messages, chat_template=CHATML_WITH_THINKING_SWITCH, tokenize=False,
                                       add_generation_prompt=add_generation_prompt, enable_thinking=thinking)
        ids = ours.encode(prompt)
        assert ids == ref.encode(text, add_special_tokens=False), prompt
        assert ours.decode(ids) == unicodedata.normalize("NFC", text)  # decoding shows the normalized text
        assert text == zoo.apply_chat_template(messages, add_generation_prompt=add_generation_prompt,
                                               enable_thinking=thinking)
    ids = ours.encode("What is 7 * 6?")
    assert ids[:3] == [151644, 872, 198]  # <|im_start|> user \n
    empty_think = [151667, 271, 151668, 271]  # <think> \n\n </think> \n\n
    assert (ids[-4:] == empty_think) == (add_generation_prompt and not thinking)
    # chat_wrapped=False encodes the text as it is
    assert ours.encode("What is 7 * 6?", chat_wrapped=False) == ref.encode("What is 7 * 6?", add_special_tokens=False)


def test_special_token_ids(reference, ours):
    ref, _ = reference
    assert ours.encode("<|endoftext|>") == [151643] and ours.encode(" <|im_end|>\n") == [151645]
    assert ours.decode([ours.pad_token_id]) == "<|endoftext|>" and ours.pad_token_id == ref.pad_token_id
    assert ours.eos_token_id == 151643  # no repo_id: a base model's end of text
    assert len(ours._special_to_id) == 26 and ours._special_to_id["</think>"] == 151668


def test_repo_id_downloads_a_missing_file_and_sets_eos(reference, monkeypatch, tmp_path):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    _, folder = reference
    asked = []

    def fake(repo_id, filename, revision, local_dir):
        asked.append((repo_id, filename, local_dir))
        target = tmp_path / local_dir / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((folder / "tokenizer.json").read_bytes())
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    monkeypatch.chdir(tmp_path)
    instruct = Qwen3Tokenizer("Qwen3-0.6B/tokenizer.json", repo_id="Qwen/Qwen3-0.6B")
    assert asked == [("Qwen/Qwen3-0.6B", "tokenizer.json", "Qwen3-0.6B")]
    assert instruct.eos_token_id == 151645  # <|im_end|> ends an instruct model's answer
    base = Qwen3Tokenizer("Qwen3-0.6B-Base/tokenizer.json", repo_id="Qwen/Qwen3-0.6B-Base")
    assert base.eos_token_id == 151643


def test_missing_file_without_repo_id_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass repo_id"):
        Qwen3Tokenizer(str(tmp_path / "tokenizer.json"))
