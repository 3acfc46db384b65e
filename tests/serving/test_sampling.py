"""Generation's arguments: bad values are refused with a clear error, the sampling options behave as documented,
and one validated ``SamplingParams`` object carries the same request as the keywords."""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.generation import generate
from llms_from_scratch.models import build_model, get_config
from llms_from_scratch.serving.generation import ContextLengthError, SamplingParams, next_token, stream

SMALL = dict(vocab_size=128, emb_dim=32, n_layers=2, n_heads=4, n_kv_groups=2, hidden_dim=48, context_length=64)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(get_config("qwen3-0.6b", **SMALL)).eval()


def test_generation_arguments_are_checked(model):
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        generate(model, ids, 2, temperature=-1.0)
    with pytest.raises(ValueError, match=r"top_p must be a number in \(0, 1\]"):
        generate(model, ids, 2, temperature=1.0, top_p=1.5)
    with pytest.raises(ValueError, match="attention_mask shape"):
        generate(model, ids, 2, attention_mask=torch.ones(1, 2))
    gpt2 = build_model(get_config("gpt2-124m", vocab_size=64, emb_dim=16, n_layers=1, n_heads=2, context_length=8))
    with pytest.raises(ContextLengthError, match="6 tokens plus max_new_tokens=4 makes 10 tokens, .* context of 8"):
        generate(gpt2.eval(), torch.zeros(1, 6, dtype=torch.long), 4)


def test_sampling_options_behave():
    logits = torch.tensor([[0.0, 5.0, 4.0, -1.0]])
    g = torch.Generator().manual_seed(0)
    assert next_token(logits).item() == 1
    picks = {next_token(logits, temperature=1.0, top_k=2, generator=g).item() for _ in range(50)}
    assert picks == {1, 2}
    picks = {next_token(logits, temperature=1.0, top_p=0.5, generator=g).item() for _ in range(20)}
    assert picks == {1}
    seen = torch.tensor([[False, True, False, False]])
    assert next_token(logits, repetition_penalty=2.0, seen=seen).item() == 2


def test_sampling_params_are_one_validated_object(model):
    import dataclasses

    ids = torch.tensor([[1, 2, 3]])
    params = SamplingParams(temperature=1.0, top_k=5, seed=7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.temperature = 0.5
    with pytest.raises(ValueError, match="top_k must be a whole number >= 1"):
        SamplingParams(top_k=0)
    # the object and the keywords are the same request; a seed makes the draw repeatable
    by_object = generate(model, ids, 6, params)
    assert torch.equal(by_object, generate(model, ids, 6, temperature=1.0, top_k=5, seed=7))
    assert torch.equal(by_object, generate(model, ids, 6, SamplingParams(), temperature=1.0, top_k=5, seed=7))
    with pytest.raises(TypeError, match="unknown sampling option"):
        generate(model, ids, 2, temprature=1.0)


# issue 15, items 12 and 2: values that used to reach torch (and fail there, or give garbage) are refused up
# front with a ValueError naming the parameter and what it may be; the server answers the same error with a 400


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, "0.7"])
def test_temperature_must_be_a_finite_number(model, value):
    """Before: temperature NaN reached torch.multinomial ("probability tensor contains inf, nan")."""
    with pytest.raises(ValueError, match=r"temperature must be a finite number >= 0 \(0 = greedy\), got"):
        generate(model, torch.tensor([[1, 2, 3]]), 2, temperature=value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -2.0])
def test_repetition_penalty_must_be_a_finite_positive_number(model, value):
    """Before: repetition_penalty NaN generated garbage (every logit NaN, argmax 0) without a word."""
    with pytest.raises(ValueError, match="repetition_penalty must be a finite number > 0"):
        generate(model, torch.tensor([[1, 2, 3]]), 2, repetition_penalty=value)


def test_an_empty_prompt_is_a_value_error(model):
    """Before: IndexError ("index -1 is out of bounds for dimension 1 with size 0") from inside the model."""
    with pytest.raises(ValueError, match="the prompt is empty"):
        generate(model, torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="has no real token"):
        generate(model, torch.tensor([[0, 0]]), 3, attention_mask=torch.tensor([[0, 0]]))


@pytest.mark.parametrize("options, message", [
    (dict(top_k=2.5, temperature=1.0), "top_k must be a whole number >= 1, got 2.5"),
    (dict(top_k=True, temperature=1.0), "top_k must be a whole number >= 1, got True"),
    (dict(seed=2**70), "seed must be a whole number from"),
    (dict(seed=1.5), "seed must be a whole number"),
])
def test_counts_and_seeds_must_be_whole_numbers(model, options, message):
    """Before: float top_k raised TypeError inside torch.topk; a seed of 2**70 failed in manual_seed."""
    with pytest.raises(ValueError, match=message):
        generate(model, torch.tensor([[1, 2, 3]]), 2, **options)


@pytest.mark.parametrize("max_new_tokens", [3.0, 1e9, -1, "5"])
def test_max_new_tokens_must_be_a_whole_number(model, max_new_tokens):
    """Before: a float max_new_tokens raised TypeError from torch.zeros when the cache was allocated."""
    with pytest.raises(ValueError, match="max_new_tokens must be a whole number >= 0"):
        generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens)


def test_a_prompt_longer_than_a_rope_models_context_is_refused(model):
    """Before: a 70-token prompt for a 64-token RoPE model was generated from without a word."""
    assert model.cfg.context_length == 64 and model.pos_emb is None  # RoPE positions, no table to overflow
    with pytest.raises(ContextLengthError, match="a prompt of 70 tokens .* context of 64: shorten the prompt"):
        generate(model, torch.ones(1, 70, dtype=torch.long), 1)
    with pytest.raises(ContextLengthError, match="a prompt of 60 tokens .* ask for at most 4 new tokens"):
        generate(model, torch.ones(1, 60, dtype=torch.long), 5)
    assert generate(model, torch.ones(1, 60, dtype=torch.long), 4).shape == (1, 64)  # exactly full is fine


def test_a_huge_max_new_tokens_is_refused_before_anything_is_allocated(model, monkeypatch):
    """Before: max_new_tokens=10**9 asked new_cache for a cache of a billion positions (terabytes for a real
    model). Now stream() itself raises, before its first token is requested, naming both numbers."""
    allocations = []
    monkeypatch.setattr(model, "new_cache", lambda *args: allocations.append(args))
    with pytest.raises(ContextLengthError, match="3 tokens plus max_new_tokens=1000000000 .* context of 64"):
        stream(model, torch.tensor([[1, 2, 3]]), 10**9)  # no next(): the check does not wait for iteration
    assert allocations == []


def test_a_sliding_window_model_runs_past_its_context_and_a_mixed_one_does_not():
    """Every layer of Mistral 7B v0.1 attends within a window through RoPE, so its ring-buffer cache stays
    ``window`` tokens long at any length and the context does not bound it; one full-attention layer does."""
    torch.manual_seed(0)
    small = dict(SMALL, context_length=8, sliding_window=4)
    mistral = build_model(get_config("mistral-7b-v0.1", **small)).eval()
    ids = torch.tensor([[5, 6, 7]])
    long = generate(mistral, ids, 12)  # 15 tokens, past the context of 8
    assert torch.equal(long, generate(mistral, ids, 12, use_cache=False))  # the cache changes nothing
    mixed = build_model(get_config("qwen3-0.6b", **small, layer_types=("sliding", "full"))).eval()
    with pytest.raises(ContextLengthError, match="context of 8"):
        generate(mixed, ids, 12)


def test_a_tiny_temperature_samples_the_most_likely_token():
    """logits / 1e-42 overflow to inf, and softmax would turn inf - inf into NaN: the distribution is the
    same after shifting by the maximum, which is what happens then."""
    logits = torch.tensor([[0.5, 3.0, 2.9, -1.0]])
    picks = {next_token(logits, temperature=1e-42, generator=torch.Generator().manual_seed(i)).item()
             for i in range(10)}
    assert picks == {1}
