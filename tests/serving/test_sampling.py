"""Generation's arguments: bad values are refused with a clear error, the sampling options behave as documented,
and one validated ``SamplingParams`` object carries the same request as the keywords."""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.generation import generate
from llms_from_scratch.models import build_model, get_config

SMALL = dict(vocab_size=128, emb_dim=32, n_layers=2, n_heads=4, n_kv_groups=2, hidden_dim=48, context_length=64)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(get_config("qwen3-0.6b", **SMALL)).eval()


def test_generation_arguments_are_checked(model):
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        generate(model, ids, 2, temperature=-1.0)
    with pytest.raises(ValueError, match="top_p must be in"):
        generate(model, ids, 2, temperature=1.0, top_p=1.5)
    with pytest.raises(ValueError, match="attention_mask shape"):
        generate(model, ids, 2, attention_mask=torch.ones(1, 2))
    gpt2 = build_model(get_config("gpt2-124m", vocab_size=64, emb_dim=16, n_layers=1, n_heads=2, context_length=8))
    with pytest.raises(ValueError, match="exceeds the learned position table"):
        generate(gpt2.eval(), torch.zeros(1, 6, dtype=torch.long), 4)


def test_sampling_options_behave():
    from llms_from_scratch.generation import next_token

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

    from llms_from_scratch.serving.generation import SamplingParams

    ids = torch.tensor([[1, 2, 3]])
    params = SamplingParams(temperature=1.0, top_k=5, seed=7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.temperature = 0.5
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        SamplingParams(top_k=0)
    # the object and the keywords are the same request; a seed makes the draw repeatable
    by_object = generate(model, ids, 6, params)
    assert torch.equal(by_object, generate(model, ids, 6, temperature=1.0, top_k=5, seed=7))
    assert torch.equal(by_object, generate(model, ids, 6, SamplingParams(), temperature=1.0, top_k=5, seed=7))
    with pytest.raises(TypeError, match="unknown sampling option"):
        generate(model, ids, 2, temprature=1.0)
