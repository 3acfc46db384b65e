"""The Llama 2 / Mistral SentencePiece tokenizer equals the references.

No real Llama 2 or Mistral tokenizer file can be downloaded here, so each test trains a small SentencePiece
BPE model with Llama 2's options (identity normalization, dummy prefix, no whitespace removal, split digits,
byte fallback) on a varied corpus, then compares our ids and texts with the ``sentencepiece`` library
(``tokenizer.model``) and with Hugging Face ``tokenizers`` on the ``tokenizer.json`` that ``transformers``
converts from the same model (plus the other tokenizer.json layouts found in Llama 2 / Mistral repositories).
"""

from __future__ import annotations

import json
import random
import shutil

import pytest

from llms_from_scratch.tokenizers import SentencePieceBPETokenizer, sentencepiece_tokenizer, tokenizer_json_tokenizer
from llms_from_scratch.tokenizers.sentencepiece_model import read_sentencepiece_model

spm = pytest.importorskip("sentencepiece")
from tokenizer_files import SENTENCEPIECE_TRAINING_TEXT, train_sentencepiece  # noqa: E402

CORPUS = list(SENTENCEPIECE_TRAINING_TEXT) + [
    "", " ", "  ", "\n", "a", " Hello", "Hello ", "   three leading spaces and two trailing  ",
    "Emoji 🤖🚀👍🏽 and flags 🇫🇷 plus zero-width\u200bjoiner",  # characters outside the vocabulary
    "e\u0301 versus \u00e9 (no normalization happens)", "ℌ𝔢𝔩𝔩𝔬 ﬁ ① Ⅻ", "tab\tonly\there", "\r\n\r\n",
    "<s>text that looks like special tokens</s> and <unk> and <0x41>",
    "a" * 50 + " " + "ab" * 30, "The capital of France is Paris.",
]

def random_texts(n=150, seed=0):
    """Mixtures of corpus fragments, whitespace runs and rare characters (byte fallback)."""
    rng = random.Random(seed)
    words = " ".join(SENTENCEPIECE_TRAINING_TEXT).split(" ") + ["🤖", "ß", "\t", "\n", "  ", "Ω", "x1y2", "ǅ", "\u00a0"]
    return ["".join(rng.choice(words) + rng.choice(["", " ", "  ", "\n"]) for _ in range(rng.randint(1, 12)))
            for _ in range(n)]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return train_sentencepiece(tmp_path_factory.mktemp("spm") / "tokenizer.model")


@pytest.fixture(scope="module")
def reference(model_file):
    return spm.SentencePieceProcessor(model_file=str(model_file))


def test_model_file_reader_matches_sentencepiece(model_file, reference):
    spec = read_sentencepiece_model(model_file)
    assert len(spec.pieces) == reference.get_piece_size() == 600
    for i, (piece, score, kind) in enumerate(zip(spec.pieces, spec.scores, spec.types)):
        assert piece == reference.id_to_piece(i)
        assert score == pytest.approx(reference.get_score(i), abs=0)
        assert (kind == 3, kind == 2, kind == 6) == (reference.is_control(i), reference.is_unknown(i),
                                                     reference.is_byte(i))
    assert (spec.model_type, spec.byte_fallback, spec.normalizer_name) == (2, True, "identity")
    assert (spec.add_dummy_prefix, spec.remove_extra_whitespaces) == (True, False)


def test_encode_and_decode_match_sentencepiece(model_file, reference):
    ours = sentencepiece_tokenizer(model_file)
    assert isinstance(ours, SentencePieceBPETokenizer)
    assert (ours.bos_id, ours.eos_ids, ours.unk_id) == (reference.bos_id(), (reference.eos_id(),), reference.unk_id())
    byte_fallback_seen = False
    for text in CORPUS + random_texts():
        expected = reference.encode(text)
        assert ours.encode(text, allow_special=False) == expected, text
        assert ours.decode(expected, skip_special=True) == reference.decode(expected), text
        assert ours.encode(text, bos=True, eos=True, allow_special=False) == reference.encode(
            text, add_bos=True, add_eos=True)
        byte_fallback_seen |= any(reference.is_byte(i) for i in expected)
    assert byte_fallback_seen
    # the dummy prefix: one "▁" in front, leading spaces kept, and decode removes exactly that one
    assert ours.decode(ours.encode("  two spaces")) == "  two spaces"
    assert reference.id_to_piece(ours.encode("Hello")[0]).startswith("▁")


def test_decode_of_broken_and_special_sequences(model_file, reference):
    ours = sentencepiece_tokenizer(model_file)
    robot = ours.encode("🤖", allow_special=False)  # "▁" then four byte pieces
    assert [reference.is_byte(i) for i in robot][-4:] == [True] * 4
    for ids in (robot[:-1], robot[:-2] + robot[-1:], robot[1:3], [0, 1, 2] + robot, robot + [2, 1] + robot):
        assert ours.decode(ids, skip_special=True) == reference.decode(ids), ids
    assert ours.decode([1] + ours.encode("Hi")) == "<s> Hi"  # as Hugging Face prints it
    assert ours.decode([1] + ours.encode("Hi"), skip_special=True) == "Hi"
    with pytest.raises(ValueError, match="not in the"):
        ours.decode([600])


@pytest.mark.parametrize("options", [
    {"remove_extra_whitespaces": True},
    {"add_dummy_prefix": False},
    {"user_defined_symbols": ["<tool>", "[INST]"]},
    {"byte_fallback": False, "character_coverage": 0.98, "vocab_size": 300},
])
def test_other_sentencepiece_options_match(tmp_path, options):
    model_file = train_sentencepiece(tmp_path / "tokenizer.model", **options)
    reference = spm.SentencePieceProcessor(model_file=str(model_file))
    ours = sentencepiece_tokenizer(model_file)
    for text in CORPUS + random_texts(60, seed=1) + ["<tool>[INST] x<tool>y [INST]"]:
        expected = reference.encode(text)
        assert ours.encode(text, allow_special=False) == expected, text
        assert ours.decode(expected, skip_special=True) == reference.decode(expected), text


def test_unsupported_models_are_refused(tmp_path):
    nfkc = train_sentencepiece(tmp_path / "nfkc.model", normalization_rule_name="nmt_nfkc", vocab_size=400)
    with pytest.raises(ValueError, match="normalization rule 'nmt_nfkc'"):
        sentencepiece_tokenizer(nfkc)
    unigram = train_sentencepiece(tmp_path / "unigram.model", model_type="unigram", vocab_size=400)
    with pytest.raises(ValueError, match="only SentencePiece BPE"):
        sentencepiece_tokenizer(unigram)
    (tmp_path / "bad.model").write_bytes(b"IQ== 0\nIg== 1\n")  # a tiktoken file (Llama 3), not a protobuf
    with pytest.raises(ValueError, match="not a readable SentencePiece model"):
        sentencepiece_tokenizer(tmp_path / "bad.model")
    with pytest.raises(ValueError, match="neither tokenizer.model nor tokenizer.json"):
        sentencepiece_tokenizer(tmp_path)


@pytest.fixture(scope="module")
def converted_json(model_file, tmp_path_factory):
    """The tokenizer.json ``transformers`` writes for a Llama checkpoint that ships only tokenizer.model."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("google.protobuf")  # transformers reads the .model through protobuf
    folder = tmp_path_factory.mktemp("llama2-hf")
    shutil.copy(model_file, folder / "tokenizer.model")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "legacy": True, "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>"}))
    out = tmp_path_factory.mktemp("llama2-json")
    transformers.AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))


def _layouts(spec):
    """The "▁" layouts of Llama 2 / Mistral tokenizer.json files: transformers' current conversion (Metaspace,
    prepend always), Llama-2-7b-hf's (Prepend + Replace normalizer) and the Metaspace variants."""
    legacy_normalizer = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    metaspace = spec["pre_tokenizer"]
    assert metaspace["type"] == "Metaspace"
    return {
        "converted": spec,
        "llama2-hf": {**spec, "normalizer": legacy_normalizer, "pre_tokenizer": None},
        "metaspace-first": {**spec, "pre_tokenizer": {**metaspace, "prepend_scheme": "first"}},
        "metaspace-split": {**spec, "pre_tokenizer": {**metaspace, "split": True}},
    }


@pytest.mark.parametrize("layout", ["converted", "llama2-hf", "metaspace-first", "metaspace-split"])
def test_tokenizer_json_matches_hf_tokenizers(converted_json, layout, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    spec = _layouts(converted_json)[layout]
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    ref = tokenizers.Tokenizer.from_str(json.dumps(spec))
    ours = tokenizer_json_tokenizer(tmp_path)  # the zoo's entry point hands SentencePiece layouts over to us
    assert isinstance(ours, SentencePieceBPETokenizer)
    assert (ours.bos_id, ours.eos_ids) == (1, (2,))
    for text in CORPUS + random_texts(80, seed=2) + ["<s>Hello</s> world<s> x", "<s>[INST] hi [/INST]"]:
        expected = ref.encode(text, add_special_tokens=False).ids
        assert ours.encode(text) == expected, text
        for skip in (True, False):
            assert ours.decode(expected, skip_special=skip) == ref.decode(expected, skip_special_tokens=skip), text


def test_llama2_layout_json_equals_the_model_file(converted_json, model_file, reference, tmp_path):
    """Llama-2-7b-hf's tokenizer.json layout and the tokenizer.model give the same ids (special tokens apart)."""
    (tmp_path / "tokenizer.json").write_text(json.dumps(_layouts(converted_json)["llama2-hf"]))
    from_json = sentencepiece_tokenizer(tmp_path / "tokenizer.json")
    for text in CORPUS + random_texts(40, seed=3):
        if "<" not in text:
            assert from_json.encode(text) == reference.encode(text), text


CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "  And of Italy?  "},
]


def test_llama2_chat_format(model_file, reference):
    ours = sentencepiece_tokenizer(model_file, chat="llama2")
    text = ours.apply_chat_template(CONVERSATION)
    assert text == ("<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nWhat is the capital of France? [/INST] Paris. </s>"
                    "<s>[INST] And of Italy? [/INST]")
    assert ours.apply_chat_template(CONVERSATION, add_generation_prompt=False) == text  # [/INST] is the prompt
    # Meta's reference chat code encodes each exchange separately, with BOS and (after an answer) EOS
    system, first, answer, second = (m["content"] for m in CONVERSATION)
    first = f"<<SYS>>\n{system}\n<</SYS>>\n\n{first}"
    expected = (reference.encode(f"[INST] {first.strip()} [/INST] {answer.strip()} ", add_bos=True, add_eos=True)
                + reference.encode(f"[INST] {second.strip()} [/INST]", add_bos=True))
    assert ours.encode(text) == expected
    assert ours.encode(ours.apply_chat_template(CONVERSATION[1:2])) == reference.encode(
        "[INST] What is the capital of France? [/INST]", add_bos=True)
    with pytest.raises(ValueError, match="alternate user and assistant"):
        ours.apply_chat_template([{"role": "assistant", "content": "Hi"}])
    with pytest.raises(ValueError, match="base model"):
        sentencepiece_tokenizer(model_file).apply_chat_template(CONVERSATION)


def test_mistral_instruct_chat_format(model_file, reference):
    ours = sentencepiece_tokenizer(model_file, chat="mistral")
    text = ours.apply_chat_template(CONVERSATION)
    assert text == ("<s>[INST] You are terse.\n\nWhat is the capital of France? [/INST] Paris.</s>"
                    "[INST]   And of Italy?   [/INST]")
    # Mistral's v1 instruct tokenizer: BOS, then each user turn encoded as "[INST] ... [/INST]" (system
    # prompt before the first one) and each answer encoded on its own followed by EOS
    expected = ([reference.bos_id()]
                + reference.encode("[INST] You are terse.\n\nWhat is the capital of France? [/INST]")
                + reference.encode("Paris.") + [reference.eos_id()]
                + reference.encode("[INST]   And of Italy?   [/INST]"))
    assert ours.encode(text) == expected


def test_chat_format_from_tokenizer_config(converted_json, tmp_path):
    """A folder's tokenizer_config.json decides: an [INST] template gives the chat format, none gives none."""
    (tmp_path / "tokenizer.json").write_text(json.dumps(converted_json))
    assert tokenizer_json_tokenizer(tmp_path).chat_format is None
    for markers, kind in (("[INST] <<SYS>> [/INST]", "llama2"), ("[INST] [/INST]", "mistral")):
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": f"{{{{ '{markers}' }}}}"}))
        assert tokenizer_json_tokenizer(tmp_path).chat_format.kind == kind
