"""Decoding with ``llms_from_scratch.ch05.generate``: greedy, temperature, top-k, top-p, eos, long prompts."""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.ch04 import GPTModel, generate_text_simple
from llms_from_scratch.ch05 import generate

CFG = {"vocab_size": 101, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0,
       "qkv_bias": False}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPTModel(CFG).eval()


@pytest.fixture
def prompt():
    return torch.randint(0, CFG["vocab_size"], (2, 5), generator=torch.Generator().manual_seed(3))


def test_temperature_zero_is_greedy(model, prompt):
    greedy = generate_text_simple(model, prompt, max_new_tokens=12, context_size=16)
    assert torch.equal(generate(model, prompt, 12, 16, temperature=0.0), greedy)
    # top-k and top-p only shape the sampling distribution; without sampling they change nothing
    assert torch.equal(generate(model, prompt, 12, 16, temperature=0.0, top_k=3, top_p=0.5), greedy)


def test_top_k_one_is_greedy_even_when_sampling(model, prompt):
    greedy = generate_text_simple(model, prompt, max_new_tokens=12, context_size=16)
    torch.manual_seed(1)
    assert torch.equal(generate(model, prompt, 12, 16, temperature=1.5, top_k=1), greedy)


def test_tiny_top_p_is_greedy_and_top_p_one_changes_nothing(model, prompt):
    greedy = generate_text_simple(model, prompt, max_new_tokens=12, context_size=16)
    torch.manual_seed(1)
    assert torch.equal(generate(model, prompt, 12, 16, temperature=1.0, top_p=1e-6), greedy)
    torch.manual_seed(2)
    plain = generate(model, prompt, 12, 16, temperature=1.0)
    torch.manual_seed(2)
    assert torch.equal(generate(model, prompt, 12, 16, temperature=1.0, top_p=1.0), plain)


def test_sampling_is_seeded_and_varies(model, prompt):
    torch.manual_seed(5)
    a = generate(model, prompt, 12, 16, temperature=2.0)
    torch.manual_seed(5)
    b = generate(model, prompt, 12, 16, temperature=2.0)
    c = generate(model, prompt, 12, 16, temperature=2.0)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_top_k_samples_only_from_the_k_best(model):
    idx = torch.zeros(1, 1, dtype=torch.long)
    with torch.no_grad():
        best3 = set(torch.topk(model(idx)[0, -1], 3).indices.tolist())
    torch.manual_seed(0)
    firsts = {generate(model, idx, 1, 16, temperature=5.0, top_k=3)[0, -1].item() for _ in range(60)}
    assert firsts <= best3 and len(firsts) > 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_k": 0}, "top_k must be >= 1"),
        ({"top_k": -2}, "top_k must be >= 1"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"temperature": -0.1}, "temperature must be >= 0"),
        ({"temperature": float("nan")}, "temperature must be >= 0"),
        ({"context_size": 17}, "exceeds the model's context length 16"),
    ],
)
def test_bad_arguments_are_clear_errors(model, prompt, kwargs, message):
    args = {"max_new_tokens": 3, "context_size": 16, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(model, prompt, **args)


def test_eos_stops_before_appending_it(model, prompt):
    single = prompt[:1]
    greedy = generate(model, single, 10, 16)
    eos = greedy[0, single.shape[1] + 3].item()  # the 4th generated token
    first = (greedy[0, single.shape[1]:] == eos).nonzero()[0].item()  # it may also occur earlier
    out = generate(model, single, 10, 16, eos_id=eos)
    assert torch.equal(out, greedy[:, : single.shape[1] + first])


def test_eos_in_a_batch_pads_finished_rows(model, prompt):
    greedy = generate(model, prompt, 10, 16)
    eos = greedy[0, prompt.shape[1]].item()  # row 0 ends at once
    out = generate(model, prompt, 10, 16, eos_id=eos)
    assert (out[0, prompt.shape[1]:] == eos).all()
    if eos not in greedy[1, prompt.shape[1]:].tolist():
        assert torch.equal(out[1], greedy[1])  # row 1 never finished and ran to the end


def test_long_prompt_is_cropped_to_its_last_tokens(model):
    long_prompt = torch.randint(0, CFG["vocab_size"], (1, 40), generator=torch.Generator().manual_seed(4))
    out = generate(model, long_prompt, 6, 16)
    cropped = generate(model, long_prompt[:, -16:], 6, 16)
    assert torch.equal(out[:, :40], long_prompt)
    assert torch.equal(out[:, 40:], cropped[:, 16:])
