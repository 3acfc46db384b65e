"""`generate` and `serve` on checkpoint folders of the Qwen1, Qwen3-MoE, DeepSeek-V3, Mistral and Llama 2
families, in each family's on-disk layout.

Each folder holds a shrunk random model written by ``save_hf_checkpoint`` plus real tokenizer files: Qwen1's
``qwen.tiktoken`` with a -Chat ``generation_config.json``, a Qwen-style byte-level ``tokenizer.json`` with
a ChatML template (Qwen3-MoE), DeepSeek-V3's byte-level ``tokenizer.json`` (three Split stages, BOS
added, eos id 1 in config.json), a Mistral instruct folder (sliding window shorter than prompt plus answer,
SentencePiece ``tokenizer.model`` and ``tokenizer.json``, an [INST] chat template) and a Llama 2 base folder
in Meta's original layout (``params.json``, ``consolidated.00.pth`` and only ``tokenizer.model``). The
command's printed text must equal decoding ``generation.generate``'s tokens with the tokenizer built directly
from the files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import llms_from_scratch
from llms_from_scratch.cli import main
from llms_from_scratch.generation import generate
from llms_from_scratch.models import get_config, load_hf_checkpoint, load_meta_llama_checkpoint, save_hf_checkpoint
from llms_from_scratch.models.blocks import make_cache
from llms_from_scratch.models.meta_llama import save_meta_llama_checkpoint
from llms_from_scratch.nn import MLAConfig, MoEConfig, RingKVCache, RopeScaling
from llms_from_scratch.tokenizers import (
    SentencePieceBPETokenizer,
    folder_tokenizer,
    qwen1_tokenizer,
    sentencepiece_tokenizer,
    tokenizer_json_tokenizer,
)

tokenizers = pytest.importorskip("tokenizers")
from tokenizer_files import (  # noqa: E402
    MISTRAL_STYLE_TEMPLATE,
    write_qwen_tiktoken,
    write_sentencepiece_folder,
    write_tokenizer_folder,
)
from zoo_reference import random_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(emb_dim=32, n_layers=2, n_heads=4, head_dim=8, hidden_dim=48, context_length=128)
PROMPT = "Hello, 123 world! 日本語"
NEW_TOKENS = 8
WINDOW = 6  # Mistral's sliding window: shorter than the answer alone, so the ring-buffer cache wraps


def _qwen1(folder: Path):
    save_hf_checkpoint(random_model(get_config("qwen1-1.8b", **TINY)), folder)
    write_qwen_tiktoken(folder)
    (folder / "generation_config.json").write_text(json.dumps({"chat_format": "chatml", "eos_token_id": 151643}))
    return qwen1_tokenizer(folder / "qwen.tiktoken", chat=True)


def _qwen3_moe(folder: Path):
    vocab = write_tokenizer_folder(folder, "qwen")
    cfg = get_config("qwen3-30b-a3b", **TINY, vocab_size=vocab, n_kv_groups=2,
                     moe=MoEConfig(n_experts=4, n_experts_per_tok=2, hidden_dim=16))
    save_hf_checkpoint(random_model(cfg), folder)
    tokenizer = tokenizer_json_tokenizer(folder)
    stop = [tokenizer.special_tokens[t] for t in ("<|im_end|>", "<|endoftext|>")]  # as Qwen3's instruct repos
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": stop}))
    return tokenizer


def _deepseek(folder: Path):
    vocab = write_tokenizer_folder(folder, "deepseek")
    cfg = get_config(
        "deepseek-v3", **{**TINY, "head_dim": 24}, vocab_size=vocab,
        rope_scaling=RopeScaling("yarn", factor=8.0, original_context_length=16, attention_factor=1.0),
        mla=MLAConfig(kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, q_lora_rank=24,
                      mscale_all_dim=1.0),
        moe=MoEConfig(n_experts=4, n_experts_per_tok=2, hidden_dim=16, scoring="sigmoid", n_groups=2, topk_groups=1,
                      routed_scaling=2.5, n_shared_experts=1, correction_bias=True, first_dense_layers=1),
    )
    save_hf_checkpoint(random_model(cfg), folder)
    return tokenizer_json_tokenizer(folder)


def _mistral(folder: Path):
    vocab = write_sentencepiece_folder(folder, chat_template=MISTRAL_STYLE_TEMPLATE)
    cfg = get_config("mistral-7b-instruct-v0.1", **TINY, vocab_size=vocab, n_kv_groups=2, sliding_window=WINDOW)
    save_hf_checkpoint(random_model(cfg), folder)
    return sentencepiece_tokenizer(folder / "tokenizer.model", chat="mistral")


def _llama2_meta(folder: Path):
    vocab = write_sentencepiece_folder(folder, tokenizer_json=False)
    (folder / "tokenizer_config.json").unlink()  # Meta's layout: params.json, consolidated.00.pth, tokenizer.model
    save_meta_llama_checkpoint(random_model(get_config("llama2-7b", **TINY, vocab_size=vocab, n_kv_groups=4)), folder)
    return sentencepiece_tokenizer(folder / "tokenizer.model")


FAMILIES = {"qwen1-chat": _qwen1, "qwen3-moe-instruct": _qwen3_moe, "deepseek-v3-base": _deepseek,
            "mistral-instruct": _mistral, "llama2-meta-base": _llama2_meta}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    out = {}
    for name, make in FAMILIES.items():
        folder = tmp_path_factory.mktemp(name)
        out[name] = (folder, make(folder))
    return out


def _load(folder: Path):
    return load_meta_llama_checkpoint(folder) if (folder / "params.json").is_file() else load_hf_checkpoint(folder)


def _prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    if tokenizer.chat_format is not None:
        return tokenizer.encode(tokenizer.apply_chat_template(messages))
    return tokenizer.encode(messages[-1]["content"], bos=tokenizer.bos_id is not None)


def _expected(folder: Path, tokenizer, messages: list[dict], eos_ids, n: int) -> str:
    model = _load(folder)
    ids = _prompt_ids(tokenizer, messages)
    out = generate(model, torch.tensor([ids]), n, eos_ids=eos_ids)[0, len(ids):].tolist()
    out = out[: next((i for i, t in enumerate(out) if t in eos_ids), len(out))]
    return tokenizer.decode(out, skip_special=True)


def test_folder_tokenizers_and_their_end_of_sequence_ids(folders, tmp_path):
    qwen1 = folder_tokenizer(folders["qwen1-chat"][0], "qwen1")
    assert qwen1.chat_format is not None and qwen1.eos_ids == (151645, 151643)
    qwen3 = folder_tokenizer(folders["qwen3-moe-instruct"][0], "qwen3_moe")
    assert qwen3.chat_format is not None
    assert qwen3.eos_ids == (qwen3.special_tokens["<|im_end|>"], qwen3.special_tokens["<|endoftext|>"])
    deepseek = folder_tokenizer(folders["deepseek-v3-base"][0], "deepseek")
    assert deepseek.chat_format is None and deepseek.bos_id == 0 and deepseek.eos_ids == (1,)
    # a Qwen1 base folder: generation_config says "raw" (or is absent), so no chat format and only <|endoftext|>
    (tmp_path / "qwen.tiktoken").symlink_to(folders["qwen1-chat"][0] / "qwen.tiktoken")
    assert folder_tokenizer(tmp_path, "qwen1").chat_format is None
    (tmp_path / "generation_config.json").write_text(json.dumps({"chat_format": "raw", "eos_token_id": 151643}))
    base = folder_tokenizer(tmp_path, "qwen1")
    assert base.chat_format is None and base.eos_ids == (151643,)
    # SentencePiece folders: Mistral's tokenizer.json with an [INST] template, Meta's bare tokenizer.model
    mistral = folder_tokenizer(folders["mistral-instruct"][0], "mistral")
    assert isinstance(mistral, SentencePieceBPETokenizer) and mistral.chat_format.kind == "mistral"
    assert (mistral.bos_id, mistral.eos_ids) == (1, (2,))
    llama2 = folder_tokenizer(folders["llama2-meta-base"][0], "llama")
    assert isinstance(llama2, SentencePieceBPETokenizer) and llama2.chat_format is None
    assert (llama2.bos_id, llama2.eos_ids) == (1, (2,))
    ids = llama2.encode(PROMPT, bos=True)
    assert ids == folders["llama2-meta-base"][1].encode(PROMPT, bos=True) and llama2.decode(ids[1:]) == PROMPT


def test_mistral_folder_decodes_through_the_ring_cache(folders):
    """The chat-formatted prompt plus the answer outgrow the window: generate's cache is the ring buffer,
    and its tokens equal those of recomputing the whole sequence at every step."""
    folder, tokenizer = folders["mistral-instruct"]
    model = load_hf_checkpoint(folder)
    ids = _prompt_ids(tokenizer, [{"role": "user", "content": PROMPT}])
    assert model.cfg.sliding_window == WINDOW < NEW_TOKENS < len(ids)
    cache = make_cache(model.cfg, 1, len(ids) + NEW_TOKENS, dtype=torch.float32, device="cpu")
    assert isinstance(cache, RingKVCache)
    cached = generate(model, torch.tensor([ids]), NEW_TOKENS)
    assert torch.equal(cached, generate(model, torch.tensor([ids]), NEW_TOKENS, use_cache=False))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_cli_generate_prints_the_continuation(folders, name, capsys):
    folder, tokenizer = folders[name]
    argv = ["generate", "-m", str(folder), "-p", PROMPT, "--max-new-tokens", str(NEW_TOKENS), "--device", "cpu",
            "--dtype", "float32"]
    assert main(argv) == 0
    eos = set(tokenizer.eos_ids)  # the tokenizer's own, plus generation_config.json's (Qwen3-MoE: <|endoftext|>)
    if name.startswith("qwen3"):
        eos.add(tokenizer.special_tokens["<|endoftext|>"])
    expected = _expected(folder, tokenizer, [{"role": "user", "content": PROMPT}], eos, NEW_TOKENS)
    assert expected.strip()  # the random model writes some text before any end-of-sequence id
    assert capsys.readouterr().out == expected + "\n"


def test_cli_refuses_a_folder_whose_tokenizer_it_cannot_read(folders, tmp_path, capsys):
    folder = folders["deepseek-v3-base"][0]
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).symlink_to(folder / name)
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    spec["model"]["type"] = "Unigram"
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    assert main(["generate", "-m", str(tmp_path), "-p", "hi", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Unigram model tokenizer" in err and "Traceback" not in err


def test_cli_serve_answers_the_openai_client(folders):
    openai = pytest.importorskip("openai")
    folder, tokenizer = folders["qwen3-moe-instruct"]
    env = {**os.environ, "PYTHONPATH": str(Path(llms_from_scratch.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "llms_from_scratch.cli", "serve", "-m", str(folder), "--port", "0", "--name", "tiny-moe",
         "--device", "cpu", "--dtype", "float32"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stdout.readline()
        assert line.startswith("serving tiny-moe at http://127.0.0.1:"), line + server.stderr.read()
        client = openai.OpenAI(base_url=line.split(" at ")[1].split(" ")[0], api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny-moe"]
        messages = [{"role": "user", "content": PROMPT}]
        reply = client.chat.completions.create(model="tiny-moe", messages=messages, max_tokens=6, temperature=0)
        eos = {*tokenizer.eos_ids, tokenizer.special_tokens["<|endoftext|>"]}
        assert reply.choices[0].message.content == _expected(folder, tokenizer, messages, eos, 6)
    finally:
        server.terminate()
        server.wait(timeout=30)
