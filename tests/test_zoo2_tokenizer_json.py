"""tokenizer.json layouts of the zoo II families against the `tokenizers` library, and the folder dispatch.

DeepSeek-V3's pre-tokenizer is a Sequence of three Split steps (digits in runs of up to three, CJK runs, a
word pattern) before the byte-level step; each Split keeps the text between its matches as pieces too.
"""

from __future__ import annotations

import json

import pytest
from test_zoo_tokenizers import CORPUS

from llms_from_scratch.tokenizers import UnsupportedTokenizerError, folder_tokenizer, tokenizer_json_tokenizer
from llms_from_scratch.tokenizers.families import SENTENCEPIECE_BPE

tokenizers = pytest.importorskip("tokenizers")
from zoo2_tokenizer_files import QWEN_STYLE_TEMPLATE, write_tokenizer_folder  # noqa: E402

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


def test_sentencepiece_tokenizer_json_is_named_in_the_error(tmp_path):
    """Mistral's layout (Metaspace / byte fallback) has no reader here yet: the error names folder, layout
    and what is supported."""
    spec = {"model": {"type": "BPE", "byte_fallback": True, "vocab": {"<unk>": 0, "\u2581a": 1}, "merges": []},
            "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                               {"type": "Replace"}]},
            "pre_tokenizer": None, "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}]}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(UnsupportedTokenizerError) as err:
        folder_tokenizer(tmp_path, "mistral")
    message = str(err.value)
    assert str(tmp_path) in message and SENTENCEPIECE_BPE in message and "byte-level BPE" in message
    with pytest.raises(ValueError, match="byte-level BPE only"):
        tokenizer_json_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(UnsupportedTokenizerError, match="no tokenizer file"):
        folder_tokenizer(tmp_path, "deepseek")
