"""The SDPA bonus classes: ch03.PyTorchMultiHeadAttention and ch04's *Fast classes equal the chapters' classes."""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.ch03 import MultiHeadAttention, PyTorchMultiHeadAttention
from llms_from_scratch.ch04 import (
    FeedForward,
    FeedForwardFast,
    GPTModel,
    GPTModelFast,
    LayerNorm,
    LayerNormFast,
    TransformerBlock,
    TransformerBlockFast,
    generate_text_simple,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = {"vocab_size": 97, "context_length": 12, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.1,
       "qkv_bias": False}


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _ids(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, CFG["vocab_size"], shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------- chapter 3


@pytest.mark.parametrize("qkv_bias", [False, True])
@pytest.mark.parametrize("num_tokens", [1, 5, 10])
def test_sdpa_attention_equals_chapter_attention_on_the_same_weights(qkv_bias, num_tokens):
    torch.manual_seed(1)
    mha = MultiHeadAttention(24, 16, context_length=10, dropout=0.2, num_heads=4, qkv_bias=qkv_bias).eval()
    fast = PyTorchMultiHeadAttention(24, 16, num_heads=4, dropout=0.2, qkv_bias=qkv_bias).eval()
    fast.load_state_dict(mha.state_dict())  # strict: the chapter's mask buffer is the only extra key, and ignored
    x = _x(3, num_tokens, 24)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), mha(x), rtol=1e-5, atol=1e-6)


def test_sdpa_attention_has_the_chapter_parameters_and_initial_weights():
    torch.manual_seed(2)
    mha = MultiHeadAttention(8, 8, 6, 0.0, 2, qkv_bias=True)
    torch.manual_seed(2)
    fast = PyTorchMultiHeadAttention(8, 8, 2, qkv_bias=True)
    chapter = {k: v for k, v in mha.state_dict().items() if k != "mask"}
    assert list(fast.state_dict()) == list(chapter)
    assert all(torch.equal(fast.state_dict()[k], v) for k, v in chapter.items())


def test_sdpa_attention_gradients_equal_the_chapter_gradients():
    torch.manual_seed(3)
    mha = MultiHeadAttention(16, 16, 8, 0.0, 4)
    fast = PyTorchMultiHeadAttention(16, 16, 4)
    fast.load_state_dict(mha.state_dict())
    x = _x(2, 8, 16)
    mha(x).square().sum().backward()
    fast(x).square().sum().backward()
    for name, p in fast.named_parameters():
        torch.testing.assert_close(p.grad, dict(mha.named_parameters())[name].grad, rtol=1e-4, atol=1e-5)


def test_sdpa_attention_dropout_acts_in_training_only():
    torch.manual_seed(4)
    fast = PyTorchMultiHeadAttention(16, 16, 4, dropout=0.5)
    x = _x(2, 8, 16)
    with torch.no_grad():
        evaluated = fast.eval()(x)
        assert torch.equal(fast(x), evaluated)
        assert not torch.allclose(fast.train()(x), evaluated)


def test_sdpa_attention_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        PyTorchMultiHeadAttention(8, 10, num_heads=4)


# ------------------------------------------------------------------------------------------------- chapter 4


def test_fast_components_equal_the_chapter_components():
    x = _x(2, 7, CFG["emb_dim"])
    norm, norm_fast = LayerNorm(CFG["emb_dim"]), LayerNormFast(CFG["emb_dim"])
    with torch.no_grad():
        norm.scale.uniform_(0.5, 1.5)
        norm.shift.uniform_(-1, 1)
    norm_fast.load_state_dict(norm.state_dict())
    torch.testing.assert_close(norm_fast(x), norm(x), rtol=1e-5, atol=1e-5)

    torch.manual_seed(5)
    ff = FeedForward(CFG)
    torch.manual_seed(5)
    ff_fast = FeedForwardFast(CFG)
    torch.testing.assert_close(ff_fast(x), ff(x), rtol=1e-5, atol=1e-6)

    torch.manual_seed(6)
    block = TransformerBlock(CFG).eval()
    block_fast = TransformerBlockFast(CFG).eval()
    block_fast.load_state_dict(block.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(block_fast(x), block(x), rtol=1e-5, atol=1e-5)


def test_fast_model_has_the_chapter_weights_for_the_same_seed():
    torch.manual_seed(123)
    chapter = GPTModel(CFG)
    torch.manual_seed(123)
    fast = GPTModelFast(CFG)
    sd, sd_fast = chapter.state_dict(), fast.state_dict()
    assert set(sd_fast) == set(sd)  # the added masks come last
    assert all(torch.equal(sd_fast[k], sd[k]) for k in sd)


def test_one_state_dict_loads_into_both_models_with_equal_outputs():
    torch.manual_seed(7)
    chapter = GPTModel(CFG).eval()
    fast = GPTModelFast(CFG).eval()
    fast.load_state_dict(chapter.state_dict())  # strict
    x = _ids(3, CFG["context_length"])
    with torch.no_grad():
        torch.testing.assert_close(fast(x), chapter(x), rtol=1e-5, atol=1e-5)
    idx = _ids(2, 3, seed=1)
    assert torch.equal(generate_text_simple(fast, idx, 15, 12), generate_text_simple(chapter, idx, 15, 12))

    with torch.no_grad():  # and back: a GPTModelFast state dict loads strictly into GPTModel
        for p in fast.parameters():
            p.mul_(1.1)
    back = GPTModel(CFG).eval()
    back.load_state_dict(fast.state_dict())
    fast.load_state_dict(fast.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(back(x), fast(x), rtol=1e-5, atol=1e-5)


def test_fast_state_dict_masks_are_separate_tensors():
    # safetensors refuses tensors that share memory, so the added masks must not share one buffer
    masks = [v for k, v in GPTModelFast(CFG).state_dict().items() if k.endswith("att.mask")]
    assert len(masks) == CFG["n_layers"]
    assert len({m.data_ptr() for m in masks}) == len(masks)
    assert torch.equal(masks[0], torch.triu(torch.ones(12, 12), diagonal=1))


def test_fast_model_trains_like_the_chapter_model():
    torch.manual_seed(8)
    chapter = GPTModel({**CFG, "drop_rate": 0.0})
    fast = GPTModelFast({**CFG, "drop_rate": 0.0})
    fast.load_state_dict(chapter.state_dict())
    x, y = _ids(2, 10, seed=2), _ids(2, 10, seed=3)
    for model in (chapter, fast):
        torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
    grads = dict(chapter.named_parameters())
    for name, p in fast.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-5)


def test_fast_model_refuses_inputs_longer_than_its_context():
    with pytest.raises(ValueError, match="context_length is 12"):
        GPTModelFast(CFG)(_ids(1, 13))
