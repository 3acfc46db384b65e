"""Our tokenizers give the same ids as the reference implementations on a varied corpus."""

from __future__ import annotations

import pytest

from llms_from_scratch.data import fetch
from llms_from_scratch.tokenizers import (
    WordPieceTokenizer,
    gguf_tokenizer,
    gpt2_tokenizer,
    llama3_tokenizer,
    qwen3_tokenizer,
)

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
from tokenizer_files import CORPUS  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_gpt2_matches_tiktoken_and_readme():
    import tiktoken

    ours, ref = gpt2_tokenizer(), tiktoken.get_encoding("gpt2")
    assert ours.encode("Hello, do you like tea?") == [15496, 11, 466, 345, 588, 8887, 30]
    for text in CORPUS:
        assert ours.encode(text) == ref.encode(text, allowed_special="all"), text
        assert ours.decode(ours.encode(text)) == text
    assert ours.apply_chat_template is not None
    with pytest.raises(ValueError, match="base model"):
        ours.apply_chat_template([{"role": "user", "content": "hi"}])


def test_llama3_matches_reference_and_readme():
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ours = llama3_tokenizer()
    assert ours.encode("This is a test sentence.", bos=True) + [128001] == [
        128000, 2028, 374, 264, 1296, 11914, 13, 128001]
    specials = sorted(ours.special_tokens, key=ours.special_tokens.get)
    ref = TikTokenConverter(vocab_file=str(fetch("llama3-tokenizer")), extra_special_tokens=specials).converted()
    for text in CORPUS + ["<|begin_of_text|><|start_header_id|>user<|end_header_id|>"]:
        assert ours.encode(text) == ref.encode(text, add_special_tokens=False).ids, text
        assert ours.decode(ours.encode(text)) == text
    assert ours.special_tokens["<|eot_id|>"] == 128009
    assert ours.special_tokens["<|reserved_special_token_247|>"] == 128255


def test_llama3_chat_format():
    ours = llama3_tokenizer()
    text = ours.apply_chat_template([{"role": "user", "content": "What is 2+2?"}])
    assert text == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")
    ids = ours.encode(text)
    assert ids[:2] == [128000, 128006] and ids[-4:] == [128006, 78191, 128007, 271]
    assert 128009 in ours.eos_ids
    with pytest.raises(ValueError, match="base model"):
        llama3_tokenizer(instruct=False).apply_chat_template([{"role": "user", "content": "hi"}])


def test_qwen3_matches_reference():
    from transformers import Qwen2Tokenizer

    ours = qwen3_tokenizer()
    ref = Qwen2Tokenizer(vocab=str(fetch("qwen3-vocab")), merges=str(fetch("qwen3-merges")))
    ref.add_special_tokens({"additional_special_tokens": [t for t in ours.special_tokens if t != "<|endoftext|>"]})
    for t, i in ours.special_tokens.items():
        assert ref.convert_tokens_to_ids(t) == i
    for text in CORPUS + ["<think>\nreasoning\n</think>\n\nanswer<tool_call>{}</tool_call>"]:
        assert ours.encode(text) == ref.encode(text, add_special_tokens=False), text
    assert ours.decode(ours.encode("e\u0301")) == "\u00e9"  # NFC normalization happens before encoding


def test_qwen3_chat_thinking_on_and_off():
    ours = qwen3_tokenizer()
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    on = ours.apply_chat_template(msgs)
    off = ours.apply_chat_template(msgs, enable_thinking=False)
    base = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert on == base
    assert off == base + "<think>\n\n</think>\n\n"
    assert ours.encode(off)[-6:-4] == [151645, 198] or 151667 in ours.encode(off)
    assert ours.encode(off)[-4] == 151667 and 151668 in ours.encode(off)
    with pytest.raises(ValueError, match="base model"):
        qwen3_tokenizer(instruct=False).apply_chat_template(msgs)


@pytest.fixture(scope="module")
def smollm2_file():
    return fetch("smollm2-135m-instruct-gguf")


def _smollm2_reference(path):
    """SmolLM2's published tokenizer layout (BPE, digits split individually, then byte-level), built with
    the `tokenizers` library from the vocabulary and merges in the GGUF file."""
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    reader = gguf.GGUFReader(str(path))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    merges = [tuple(m.split(" ")) for m in reader.fields["tokenizer.ggml.merges"].contents()]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([t for t, k in zip(tokens, types) if k == 3])
    return tok


def test_smollm2_gguf_tokenizer_matches_reference(smollm2_file):
    ours = gguf_tokenizer(smollm2_file)
    ref = _smollm2_reference(smollm2_file)
    for text in CORPUS:
        assert ours.encode(text) == ref.encode(text).ids, text
    for text in CORPUS:
        assert ours.decode(ours.encode(text, allow_special=False)) == text


def test_tokenizer_json_folder_matches_reference(smollm2_file, tmp_path):
    """A hub-style folder (tokenizer.json + tokenizer_config.json) gives the same tokenizer as the GGUF."""
    import json

    from llms_from_scratch.tokenizers import tokenizer_json_tokenizer

    _smollm2_reference(smollm2_file).save(str(tmp_path / "tokenizer.json"))
    from_gguf = gguf_tokenizer(smollm2_file)
    config = {"eos_token": "<|im_end|>", "bos_token": "<|im_start|>", "chat_template": (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
        "{% endif %}{% endfor %}")}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    ours = tokenizer_json_tokenizer(tmp_path)
    for text in CORPUS:
        assert ours.encode(text) == from_gguf.encode(text), text
    assert ours.eos_ids == from_gguf.eos_ids == (2,)
    msgs = [{"role": "user", "content": "Hi"}]
    assert ours.apply_chat_template(msgs) == from_gguf.apply_chat_template(msgs)


def test_bert_wordpiece_matches_transformers():
    from transformers import BertTokenizer

    vocab = fetch("all-minilm-l6-v2-vocab")
    ours = WordPieceTokenizer(vocab)
    ref = BertTokenizer(vocab=str(vocab), do_lower_case=True)
    for text in CORPUS + ["unaffable tokenization of antidisestablishmentarianism", "[MASK] is [UNK] here"]:
        ids, types = ours.encode(text)
        expected = ref(text)
        assert ids == expected["input_ids"], text
        assert types == expected["token_type_ids"]
    ids, types = ours.encode("First sentence.", "Second one!")
    expected = ref("First sentence.", "Second one!")
    assert (ids, types) == (expected["input_ids"], expected["token_type_ids"])
    assert ids[0] == 101 and ids[-1] == 102 and types[-1] == 1
