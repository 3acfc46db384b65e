"""Texts and small but real tokenizer files in the families' on-disk layouts, for the tokenizer and CLI tests.

* ``CORPUS``: varied texts that our tokenizers are compared with the reference implementations on.
* :func:`train_sentencepiece`: a SentencePiece BPE ``tokenizer.model`` trained with Llama 2's options on
  ``SENTENCEPIECE_TRAINING_TEXT`` (no real Llama 2 or Mistral tokenizer file can be downloaded offline).
* :func:`write_qwen_tiktoken`: Qwen1's ``qwen.tiktoken`` (base64 token bytes and rank per line, rank = id),
  written from the Qwen3 vocabulary in the offline mirror, which shares Qwen1's 151,643 regular tokens.
* :func:`train_byte_level`: a byte-level BPE ``tokenizer.json`` trained with the `tokenizers` library on a
  small corpus, with DeepSeek-V3's pre-tokenizer (digits in runs of up to three, CJK runs, its word pattern,
  then bytes) or Qwen's (one split pattern, NFC normalization).
* :func:`write_sentencepiece_folder`: a Llama 2 / Mistral folder: a ``tokenizer.model`` from
  :func:`train_sentencepiece`, optionally the ``tokenizer.json`` that ``transformers`` converts from it, and a
  ``tokenizer_config.json`` with an optional chat template.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import tempfile
from pathlib import Path

from llms_from_scratch.data import fetch, read_text
from llms_from_scratch.tokenizers.bpe import QWEN_PATTERN
from llms_from_scratch.tokenizers.bytes_map import token_bytes
from llms_from_scratch.tokenizers.sentencepiece_model import read_sentencepiece_model

DEEPSEEK_SPLITS = (
    r"\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+""",
)
DEEPSEEK_BOS, DEEPSEEK_EOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>"
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# a ChatML template in Qwen's style: the system turn is template code, and there is no default system text
QWEN_STYLE_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + "
    "'<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{%- if message['role'] != 'system' or "
    "not loop.first %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# a Jinja template with Mistral instruct's markers ([INST] without <<SYS>>): one "[INST] ... [/INST]" per user turn,
# each answer after a space (its own "▁"-prefixed stretch, as Mistral's reference tokenizer encodes it) and "</s>"
MISTRAL_STYLE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}"
)

BYTE_LEVEL_TRAINING_TEXT = [
    read_text("the-verdict")[:20000],
    "Numbers 7, 42, 123, 2024 and 1234567; 3.14159 and 1,000,000. " * 3,
    "日本語のテキスト、中文文本和한국어 텍스트。カタカナとひらがな。通义千问是阿里云研发的大语言模型。" * 3,
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment\n\tprint(f\"{x!r:>10}\")\n" * 3,
    "Café naïve résumé — “quotes” ‘single’ … Привет, мир! 🤖🚀",
]


# varied texts that the tokenizers are compared on: numbers, whitespace runs, accents, CJK, emoji, code, URLs
CORPUS = [
    "Hello, do you like tea?",
    "This is a test sentence.",
    "I'm sure they'll say it's fine; we've DONE it, haven't we?",
    "Numbers: 7, 42, 123, 2024, 1234567, 3.14159, -0.5e10, 00042 and 1,000,000.",
    "  leading spaces,   runs   of spaces\tand\ttabs\n\nand blank lines\r\nwith CRLF  \n",
    "Café naïve résumé — “quotes” ‘single’ … ½ ¾ ² №",
    "e\u0301 versus \u00e9: combining accents (NFC) and Å vs A\u030a",
    "日本語のテキスト、中文文本和한국어 텍스트",
    "Emoji 🤖🚀👍🏽 and flags 🇫🇷 plus zero-width\u200bjoiner",
    "مرحبا بالعالم — שלום עולם — Привет, мир! Ελληνικά",
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment\n\tprint(f\"{x!r:>10}\")",
    "URL https://example.com/path?query=1&b=2#frag and email me@example.org",
    "<|endoftext|>special tokens in text<|im_start|>user\nhi<|im_end|>",
    "",
    " ",
    "\n",
    "a" * 50 + " " + "ab" * 30,
    "The capital of France is Paris.",
]

# Llama 2's SentencePiece options, as its tokenizer.model records them
SENTENCEPIECE_TRAINING_TEXT = [
    "Hello, do you like tea? The quick brown fox jumps over the lazy dog.",
    "I'm sure they'll say it's fine; we've DONE it, haven't we?",
    "Numbers: 7, 42, 123, 2024, 1234567, 3.14159, -0.5e10 and 1,000,000.",
    "  leading spaces,   runs   of spaces\tand\ttabs\n\nand blank lines\r\nwith CRLF  \n",
    "Café naïve résumé — “quotes” ‘single’ … ½ ¾ façade coöperate Ångström",
    "日本語のテキスト、中文文本和한국어 텍스트",
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment",
    "Привет, мир! Ελληνικά مرحبا",
    "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is the capital of France? [/INST] Paris. </s>",
]

LLAMA2_OPTIONS = dict(
    model_type="bpe", vocab_size=600, byte_fallback=True, character_coverage=0.9995,
    normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
    allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2,
)


def train_sentencepiece(path: Path, **overrides) -> Path:
    """A SentencePiece BPE ``tokenizer.model`` trained with Llama 2's options (``overrides`` change some)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(SENTENCEPIECE_TRAINING_TEXT * 30), model_writer=model,
                                   **{**LLAMA2_OPTIONS, **overrides})
    path.write_bytes(model.getvalue())
    return path


def write_qwen_tiktoken(folder: Path) -> Path:
    vocab = json.loads(fetch("qwen3-vocab").read_text(encoding="utf-8"))
    lines = [f"{base64.b64encode(token_bytes(t)).decode()} {i}" for t, i in sorted(vocab.items(), key=lambda x: x[1])
             if i < 151643]
    path = folder / "qwen.tiktoken"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_byte_level(style: str, vocab_size: int = 600):
    """A trained `tokenizers.Tokenizer`: style "deepseek" (specials: bos, eos) or "qwen" (QWEN_SPECIALS)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok = Tokenizer(models.BPE())
    if style == "deepseek":
        splits = [pre_tokenizers.Split(Regex(p), behavior="isolated") for p in DEEPSEEK_SPLITS]
        specials = [DEEPSEEK_BOS, DEEPSEEK_EOS]
    else:
        splits = [pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated")]
        tok.normalizer = normalizers.NFC()
        specials = QWEN_SPECIALS
    tok.pre_tokenizer = pre_tokenizers.Sequence([*splits, byte_level])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(BYTE_LEVEL_TRAINING_TEXT, trainer)
    return tok


def write_tokenizer_folder(folder: Path, style: str) -> int:
    """Write tokenizer.json + tokenizer_config.json in the family's layout; returns the vocabulary size."""
    tok = train_byte_level(style)
    tok.save(str(folder / "tokenizer.json"))
    if style == "deepseek":  # the hub file stores bos/eos as AddedToken objects
        config = {"add_bos_token": True, "add_eos_token": False,
                  "bos_token": {"__type": "AddedToken", "content": DEEPSEEK_BOS, "special": True},
                  "eos_token": {"__type": "AddedToken", "content": DEEPSEEK_EOS, "special": True},
                  "tokenizer_class": "LlamaTokenizerFast"}
    else:
        config = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None,
                  "chat_template": QWEN_STYLE_TEMPLATE, "tokenizer_class": "Qwen2Tokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return tok.get_vocab_size()


def write_sentencepiece_folder(folder: Path, *, tokenizer_json: bool = True, chat_template: str | None = None) -> int:
    """Write tokenizer.model (+ tokenizer.json) + tokenizer_config.json as in a Llama 2 / Mistral repository;
    returns the vocabulary size."""
    import transformers

    train_sentencepiece(folder / "tokenizer.model")
    config = {"tokenizer_class": "LlamaTokenizer", "legacy": True, "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    if tokenizer_json:  # the conversion transformers applies to a repository that ships only tokenizer.model
        with tempfile.TemporaryDirectory() as out:
            transformers.AutoTokenizer.from_pretrained(folder).save_pretrained(out)
            shutil.copy(Path(out) / "tokenizer.json", folder / "tokenizer.json")
    if chat_template is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": chat_template}),
                                                       encoding="utf-8")
    return len(read_sentencepiece_model(folder / "tokenizer.model").pieces)
