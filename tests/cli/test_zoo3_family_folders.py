"""`generate` on checkpoint folders of the Gemma 3, OLMo 3 and SmolLM3 families: the families reach the command
line through the family registry alone.

Each folder holds a shrunk random model written by ``save_hf_checkpoint`` and real tokenizer files: a Gemma-style
SentencePiece ``tokenizer.json`` (byte fallback) for a Gemma 3 base folder whose prompt runs past the local
layers' window, and a byte-level ``tokenizer.json`` with a ChatML template for the OLMo 3 and SmolLM3 instruct
folders. The command's printed text must equal decoding ``generation.generate``'s tokens with the tokenizer built
directly from the files.
"""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.cli import main
from llms_from_scratch.generation import generate
from llms_from_scratch.models import get_config, load_hf_checkpoint, save_hf_checkpoint
from llms_from_scratch.tokenizers import sentencepiece_tokenizer, tokenizer_json_tokenizer

pytest.importorskip("tokenizers")
from tokenizer_files import write_sentencepiece_folder, write_tokenizer_folder  # noqa: E402
from zoo_reference import random_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(emb_dim=32, n_layers=2, n_heads=4, n_kv_groups=2, hidden_dim=48, context_length=128, extra=())
PROMPT = "Hello, 123 world! 日本語"
NEW_TOKENS = 8


def _gemma3(folder):
    vocab = write_sentencepiece_folder(folder)
    cfg = get_config("gemma3-4b", **TINY, vocab_size=vocab, head_dim=8, sliding_window=4,
                     layer_types=("sliding", "full"))
    save_hf_checkpoint(random_model(cfg), folder)
    return sentencepiece_tokenizer(folder / "tokenizer.model")


def _olmo3(folder):
    vocab = write_tokenizer_folder(folder, "qwen")
    cfg = get_config("olmo3-7b-instruct", **TINY, vocab_size=vocab, sliding_window=4, layer_types=("sliding", "full"))
    save_hf_checkpoint(random_model(cfg), folder)
    return tokenizer_json_tokenizer(folder)


def _smollm3(folder):
    vocab = write_tokenizer_folder(folder, "qwen")
    save_hf_checkpoint(random_model(get_config("smollm3-3b", **TINY, vocab_size=vocab, nope_layers=(1,))), folder)
    return tokenizer_json_tokenizer(folder)


FAMILIES = {"gemma3-base": _gemma3, "olmo3-instruct": _olmo3, "smollm3-instruct": _smollm3}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_cli_generate_prints_the_continuation(name, tmp_path, capsys):
    tokenizer = FAMILIES[name](tmp_path)
    argv = ["generate", "-m", str(tmp_path), "-p", PROMPT, "--max-new-tokens", str(NEW_TOKENS), "--device", "cpu",
            "--dtype", "float32"]
    assert main(argv) == 0
    if tokenizer.chat_format is not None:
        ids = tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}]))
    else:
        ids = tokenizer.encode(PROMPT, bos=tokenizer.bos_id is not None)
    eos = set(tokenizer.eos_ids)
    out = generate(load_hf_checkpoint(tmp_path), torch.tensor([ids]), NEW_TOKENS, eos_ids=eos)[0, len(ids):].tolist()
    out = out[: next((i for i, t in enumerate(out) if t in eos), len(out))]
    expected = tokenizer.decode(out, skip_special=True)
    assert expected.strip()  # the random model writes some text before any end-of-sequence id
    assert capsys.readouterr().out == expected + "\n"
    assert (tokenizer.chat_format is None) == name.endswith("-base")
