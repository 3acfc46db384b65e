"""The book's GPTModel as a transformers GPT2LMHeadModel: same logits, a strict round trip, a refusal to drop a
trained qkv bias that the book's model has no place for, and the addition tokenizer with the same ids."""

import pytest
import torch

from llms_from_scratch.alignment.addition import AdditionTokenizer
from llms_from_scratch.alignment.hf_gpt2 import (
    absent_qkv_bias_names,
    gpt_to_hf_state,
    hf_addition_tokenizer,
    hf_gpt2_config,
    hf_gpt2_model,
    load_hf_state_into_gpt,
)
from llms_from_scratch.ch04 import GPTModel

EOS, PAD = 12, 13


def tiny_cfg(qkv_bias: bool) -> dict:
    return {"vocab_size": 14, "context_length": 12, "emb_dim": 16, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0,
            "qkv_bias": qkv_bias}


def randomised(model: GPTModel) -> GPTModel:
    """Every parameter random, so a LayerNorm shift or a bias left at its default cannot hide a wrong mapping."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_hf_model_computes_the_same_logits(qkv_bias):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = tiny_cfg(qkv_bias)
    ours = randomised(GPTModel(cfg))
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**hf_gpt2_config(cfg, eos_token_id=EOS,
                                                                              pad_token_id=PAD)))
    hf.load_state_dict(gpt_to_hf_state(ours), strict=True)
    ids = torch.randint(0, 12, (3, cfg["context_length"]))
    with torch.no_grad():
        torch.testing.assert_close(hf.eval()(ids).logits, ours(ids), rtol=1e-5, atol=1e-5)


def test_round_trip_restores_every_parameter():
    torch.manual_seed(1)
    cfg = tiny_cfg(False)
    ours = randomised(GPTModel(cfg))
    state = gpt_to_hf_state(ours)
    assert all(not state[name].any() for name in absent_qkv_bias_names(ours))
    back = load_hf_state_into_gpt(GPTModel(cfg), state)
    for (name, p), (_, q) in zip(ours.named_parameters(), back.named_parameters()):
        assert torch.equal(p, q), name


def test_a_nonzero_qkv_bias_is_refused_for_a_model_without_one():
    cfg = tiny_cfg(False)
    model = GPTModel(cfg)
    state = gpt_to_hf_state(model)
    name = absent_qkv_bias_names(model)[1]
    state[name] = state[name] + 0.01
    with pytest.raises(ValueError, match="qkv_bias=False"):
        load_hf_state_into_gpt(GPTModel(cfg), state)
    assert absent_qkv_bias_names(GPTModel(tiny_cfg(True))) == []


def test_hf_model_keeps_the_absent_bias_frozen_and_the_value_model_shares_the_body():
    pytest.importorskip("transformers")
    torch.manual_seed(2)
    cfg = tiny_cfg(False)
    ours = randomised(GPTModel(cfg))
    policy = hf_gpt2_model(ours, cfg, eos_token_id=EOS, pad_token_id=PAD)
    frozen = {name for name, p in policy.named_parameters() if not p.requires_grad}
    assert frozen == set(absent_qkv_bias_names(ours))
    assert policy.generation_config.eos_token_id == EOS and policy.generation_config.pad_token_id == PAD
    value = hf_gpt2_model(ours, cfg, eos_token_id=EOS, pad_token_id=PAD, sequence_classification=True)
    ids = torch.randint(0, 12, (2, 6))
    with torch.no_grad():
        hidden = value.transformer(ids).last_hidden_state
        torch.testing.assert_close(policy.lm_head(hidden), ours(ids), rtol=1e-5, atol=1e-5)
    assert value.score.weight.shape == (1, cfg["emb_dim"])


def test_hf_tokenizer_has_the_task_ids_and_pads_on_the_left():
    pytest.importorskip("transformers")
    task = AdditionTokenizer()
    hf = hf_addition_tokenizer(task)
    assert hf("12+45=")["input_ids"] == task.encode("12+45=")
    assert (hf.eos_token_id, hf.pad_token_id) == (task.eos_token_id, task.pad_token_id)
    assert hf.decode([5, 7, task.eos_token_id, task.pad_token_id], skip_special_tokens=True) == "57"
    batch = hf(["1+2=", "12+45="], padding=True)["input_ids"]
    assert batch[0] == [task.pad_token_id] * 2 + task.encode("1+2=")
