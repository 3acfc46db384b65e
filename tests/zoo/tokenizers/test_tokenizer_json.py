"""tokenizer.json layouts of the byte-level and SentencePiece families against the `tokenizers` library, and the folder dispatch
(tokenizer.json by layout; tokenizer.model as SentencePiece or Llama 3's tiktoken ranks).

DeepSeek-V3's pre-tokenizer is a Sequence of three Split steps (digits in runs of up to three, CJK runs, a
word pattern) before the byte-level step; each Split keeps the text between its matches as pieces too.
"""

from __future__ import annotations

import json

import pytest

from llms_from_scratch.data import fetch
from llms_from_scratch.tokenizers import (
    SentencePieceBPETokenizer,
    UnsupportedTokenizerError,
    folder_tokenizer,
    llama3_tokenizer,
    tokenizer_json_tokenizer,
)
from llms_from_scratch.tokenizers.select import (
    BYTE_LEVEL_BPE,
    SENTENCEPIECE_BPE,
    is_tiktoken_ranks,
    tokenizer_json_kind,
)

tokenizers = pytest.importorskip("tokenizers")
from tokenizer_files import (  # noqa: E402
    CORPUS,
    MISTRAL_STYLE_TEMPLATE,
    QWEN_STYLE_TEMPLATE,
    write_sentencepiece_folder,
    write_tokenizer_folder,
)

EXTRA = ["1234567 ab12cd 2024年3月 ３４５ ٣٤٥", "カタカナ漢字ひらがな한국어", "x=1;y=22;z=333;w=4444", "'quoted' \"double\""]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    out = {}
    for style in ("deepseek", "qwen"):
        out[style] = tmp_path_factory.mktemp(style)
        write_tokenizer_folder(out[style], style)
    return out


@pytest.fixture(params=["deepseek", "qwen"])
def folder(request, folders):
    return request.param, folders[request.param]


def test_tokenizer_json_matches_the_tokenizers_library(folder):
    style, path = folder
    ours = tokenizer_json_tokenizer(path)
    ref = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
    for text in CORPUS + EXTRA:
        ids = ours.encode(text)
        assert ids == ref.encode(text).ids, text
        assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=False), text
    if style == "deepseek":  # the digit stage keeps every digit (a word-pattern-only split would drop them)
        assert ours.decode(ours.encode("1234567")) == "1234567"
        assert (ours.bos_id, ours.eos_ids, ours.chat_format) == (0, (1,), None)


def test_qwen_style_template_has_no_default_system(folders):
    """Template code such as ``'<|im_start|>system\\n' + messages[0]['content']`` is not a default system text."""
    from transformers import PreTrainedTokenizerFast

    path = folders["qwen"]
    ours = tokenizer_json_tokenizer(path)
    assert ours.chat_format is not None and ours.chat_format.default_system is None
    ref = PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    for msgs in ([{"role": "user", "content": "Hi"}],
                 [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]):
        expected = ref.apply_chat_template(msgs, chat_template=QWEN_STYLE_TEMPLATE, tokenize=False,
                                           add_generation_prompt=True)
        assert ours.apply_chat_template(msgs) == expected


def test_mistral_style_folder_goes_to_the_sentencepiece_reader(tmp_path):
    """Mistral's layout (Metaspace / byte fallback) is read by the SentencePiece tokenizer: the same ids and
    texts as the `tokenizers` library, and the [INST] chat template gives Mistral's chat format."""
    write_sentencepiece_folder(tmp_path, chat_template=MISTRAL_STYLE_TEMPLATE)
    assert tokenizer_json_kind(json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))) \
        == SENTENCEPIECE_BPE
    ours = folder_tokenizer(tmp_path, "mistral")
    assert isinstance(ours, SentencePieceBPETokenizer)
    assert (ours.bos_id, ours.eos_ids, ours.chat_format.kind) == (1, (2,), "mistral")
    ref = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    byte_fallback_seen = False
    for text in CORPUS + EXTRA + ["<s>[INST] Hi [/INST] Hello</s>"]:
        ids = ours.encode(text)
        assert ids == ref.encode(text, add_special_tokens=False).ids, text
        assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=False), text
        byte_fallback_seen |= any(ref.id_to_token(i).startswith("<0x") for i in ids)
    assert byte_fallback_seen
    # the chat format renders what the folder's Jinja template renders
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"), bos_token="<s>", eos_token="</s>")
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "2 + 2?"}]
    assert ours.apply_chat_template(msgs) == hf.apply_chat_template(msgs, chat_template=MISTRAL_STYLE_TEMPLATE,
                                                                    tokenize=False)


def test_tokenizer_model_only_folders(tmp_path):
    """tokenizer.model alone: a SentencePiece protobuf (Llama 2 / Mistral) goes to the SentencePiece reader,
    Llama 3's tiktoken rank file of the same name to the Llama 3 tokenizer."""
    spm = pytest.importorskip("sentencepiece")
    mistral = tmp_path / "mistral"
    mistral.mkdir()
    write_sentencepiece_folder(mistral, tokenizer_json=False, chat_template=MISTRAL_STYLE_TEMPLATE)
    ours = folder_tokenizer(mistral, "mistral")
    ref = spm.SentencePieceProcessor(model_file=str(mistral / "tokenizer.model"))
    assert isinstance(ours, SentencePieceBPETokenizer) and ours.chat_format.kind == "mistral"
    for text in CORPUS + EXTRA:
        assert ours.encode(text, allow_special=False) == ref.encode(text), text
    (mistral / "tokenizer_config.json").unlink()  # Meta's Llama 2 layout ships no tokenizer_config.json
    assert folder_tokenizer(mistral, "llama").chat_format is None

    llama3 = tmp_path / "llama3"
    llama3.mkdir()
    (llama3 / "tokenizer.model").symlink_to(fetch("llama3-tokenizer"))
    ours = folder_tokenizer(llama3, "llama")
    assert is_tiktoken_ranks(llama3 / "tokenizer.model") and not is_tiktoken_ranks(mistral / "tokenizer.model")
    assert ours.chat_format is None and ours.eos_ids == (128001,)  # no chat template: the base model
    assert ours.encode("Hello world", bos=True) == llama3_tokenizer(instruct=False).encode("Hello world", bos=True)


def test_unreadable_layouts_are_named_in_the_error(tmp_path):
    """A tokenizer.json layout without a reader: the error names folder, layout and what is supported."""
    spec = {"model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["\u2581a", -1.0]]}, "normalizer": None,
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581"}, "decoder": None}
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    for load in (lambda: folder_tokenizer(tmp_path, "mistral"), lambda: tokenizer_json_tokenizer(tmp_path)):
        with pytest.raises(UnsupportedTokenizerError) as err:
            load()
        message = str(err.value)
        assert str(tmp_path) in message and "Unigram model" in message
        assert BYTE_LEVEL_BPE in message and SENTENCEPIECE_BPE in message
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(UnsupportedTokenizerError, match="no tokenizer file"):
        folder_tokenizer(tmp_path, "deepseek")


def test_chat_template_in_chat_template_jinja_is_read(folders, tmp_path):
    """transformers 5's save_pretrained writes the template to chat_template.jinja, not tokenizer_config.json;
    the folder must still be recognized as a chat model with the same format."""
    from transformers import PreTrainedTokenizerFast

    ref = PreTrainedTokenizerFast(tokenizer_file=str(folders["qwen"] / "tokenizer.json"),
                                  eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ref.chat_template = QWEN_STYLE_TEMPLATE
    ref.save_pretrained(tmp_path)
    if "chat_template" in json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8")):
        pytest.skip("this transformers version keeps the template in tokenizer_config.json")
    assert (tmp_path / "chat_template.jinja").is_file()

    ours = tokenizer_json_tokenizer(tmp_path)
    assert ours.chat_format is not None
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert ours.apply_chat_template(msgs) == ref.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
