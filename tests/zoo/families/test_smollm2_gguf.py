"""Real weights: SmolLM2-135M-Instruct from its GGUF file (Q4_1, dequantized) equals `transformers` loading
the same file, and answers a factual question correctly.

The file comes through the data layer (mirror, cache, then download); see the ``download`` CLI command.
"""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.cli.generate import add_generate_arguments, cli_generate
from llms_from_scratch.cli.zoo import load_model_and_tokenizer
from llms_from_scratch.models import resolve
from llms_from_scratch.serving.generation import generate, left_pad

transformers = pytest.importorskip("transformers")

pytest.importorskip("accelerate")  # transformers needs it to read GGUF files

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def gguf_path():
    fmt, path = resolve("smollm2-135m-instruct")
    assert fmt == "gguf"
    return path


@pytest.fixture(scope="module")
def ours():
    # the CLI's loader (it keeps the last model loaded, so the CLI test below reuses this one)
    model, tokenizer = load_model_and_tokenizer("smollm2-135m-instruct", torch.device("cpu"), torch.float32)
    return model, tokenizer


@pytest.fixture(scope="module")
def reference(gguf_path):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32, attn_implementation="eager"
    )
    return model.eval()


@pytest.fixture(scope="module")
def prompt_ids(ours):
    _, tokenizer = ours
    return torch.tensor([tokenizer.encode(tokenizer.apply_chat_template(QUESTION))])


def test_config_from_gguf_metadata(ours):
    model, tokenizer = ours
    cfg = model.cfg
    assert (cfg.n_layers, cfg.emb_dim, cfg.n_heads, cfg.n_kv_groups, cfg.hidden_dim) == (30, 576, 9, 3, 1536)
    assert (cfg.vocab_size, cfg.rope_base, cfg.tie_embeddings) == (49152, 100_000.0, True)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tokenizer.eos_ids == (2,)


def test_logits_match_transformers(ours, reference, prompt_ids):
    model, _ = ours
    with torch.no_grad():
        expected = reference(prompt_ids).logits
        got = model(prompt_ids)
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 1e-5 * scale  # fp32 rounding over 30 layers, relative to the logits
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_greedy_answer_is_paris_and_matches_transformers(ours, reference, prompt_ids):
    model, tokenizer = ours
    out = generate(model, prompt_ids, 24, eos_ids=tokenizer.eos_ids)
    new = out[0, prompt_ids.shape[1]:].tolist()
    assert tokenizer.decode(new, skip_special=True) == "The capital of France is Paris."
    expected = reference.generate(prompt_ids, max_new_tokens=24, do_sample=False, eos_token_id=2)
    assert out.tolist() == expected.tolist()


def test_chat_template_and_tokens_match_transformers(ours, gguf_path, prompt_ids):
    _, tokenizer = ours
    hf = transformers.AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    text = hf.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    assert tokenizer.apply_chat_template(QUESTION) == text
    assert prompt_ids[0].tolist() == hf.encode(text, add_special_tokens=False)


def test_batched_real_prompts_equal_single(ours):
    model, tokenizer = ours
    questions = ["What is the capital of France?", "Name a primary colour."]
    prompts = [tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": q}])) for q in questions]
    ids, mask = left_pad(prompts, pad_id=tokenizer.pad_id)
    batched = generate(model, ids, 12, attention_mask=mask, eos_ids=tokenizer.eos_ids)
    for row, prompt in enumerate(prompts):
        single = generate(model, torch.tensor([prompt]), 12, eos_ids=tokenizer.eos_ids)[0, len(prompt):].tolist()
        assert batched[row, ids.shape[1]: ids.shape[1] + len(single)].tolist() == single


def test_cli_generate_answers_with_the_default_model(ours, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    args = parser.parse_args(["-p", "What is the capital of France?", "--device", "cpu", "--dtype", "float32",
                              "--max-new-tokens", "24", "--stream"])
    assert args.model == "smollm2-135m-instruct"
    assert cli_generate(args) == 0
    assert capsys.readouterr().out == "The capital of France is Paris.\n"
