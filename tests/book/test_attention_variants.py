"""Every efficient multi-head attention variant computes exactly chapter 3's MultiHeadAttention.

For each variant, on the same weights: the outputs agree, the gradients with respect to the input agree, and the
gradients with respect to every MultiHeadAttention parameter agree (the variant is evaluated on parameters mapped
from the MultiHeadAttention ones with differentiable operations, so its gradients flow back to them).
"""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from llms_from_scratch.attention_variants import VARIANTS, MHAPyTorchClass
from llms_from_scratch.ch03 import MultiHeadAttention

pytestmark = pytest.mark.usefixtures("one_thread")

# d_in, d_out, context_length, num_heads, num_tokens
SHAPES = [(16, 16, 12, 4, 12), (8, 24, 10, 3, 7)]


# nn.MultiheadAttention only supports d_in == d_out (its error for other shapes is tested below)
CASES = [(name, shape) for name in VARIANTS for shape in SHAPES if name != "pytorch_class" or shape[0] == shape[1]]


def _case(variant_name, shape, qkv_bias):
    d_in, d_out, context_length, num_heads, num_tokens = shape
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_in, d_out, context_length, 0.0, num_heads, qkv_bias=qkv_bias).double()
    if qkv_bias:  # nn.Linear starts biases random already; keep them, but make sure they are not all zero
        assert mha.W_query.bias.abs().sum() > 0
    variant = VARIANTS[variant_name](d_in, d_out, context_length, 0.0, num_heads, qkv_bias=qkv_bias).double()
    x = torch.randn(3, num_tokens, d_in, dtype=torch.double, generator=torch.Generator().manual_seed(1))
    return mha, variant, x


@pytest.mark.parametrize("qkv_bias", [False, True], ids=["no_bias", "qkv_bias"])
@pytest.mark.parametrize(("variant_name", "shape"), CASES, ids=[f"{n}-{s[0]}x{s[1]}" for n, s in CASES])
def test_variant_equals_mha(variant_name, shape, qkv_bias):
    mha, variant, x = _case(variant_name, shape, qkv_bias)

    # outputs on copied weights
    variant.load_mha_weights(mha)
    torch.testing.assert_close(variant(x), mha(x), rtol=1e-12, atol=1e-12)

    # gradients: the variant runs on parameters computed from the MHA leaves
    x_ref = x.clone().requires_grad_(True)
    x_var = x.clone().requires_grad_(True)
    target = torch.randn_like(mha(x))
    mha_params = dict(mha.named_parameters())
    (mha(x_ref) * target).sum().backward()
    ref_grads = {name: p.grad.clone() for name, p in mha_params.items()}
    mha.zero_grad()

    mapped = variant.params_from_mha(mha_params)
    assert mapped.keys() == dict(variant.named_parameters()).keys()
    (functional_call(variant, mapped, (x_var,)) * target).sum().backward()

    torch.testing.assert_close(x_var.grad, x_ref.grad, rtol=1e-12, atol=1e-12)
    for name, p in mha_params.items():
        torch.testing.assert_close(p.grad, ref_grads[name], rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("variant_name", list(VARIANTS))
def test_variant_has_as_many_parameters(variant_name):
    mha = MultiHeadAttention(32, 32, 16, 0.0, 4, qkv_bias=True)
    variant = VARIANTS[variant_name](32, 32, 16, 0.0, 4, qkv_bias=True)
    assert sum(p.numel() for p in variant.parameters()) == sum(p.numel() for p in mha.parameters())


@pytest.mark.parametrize("variant_name", list(VARIANTS))
def test_variant_float32_close(variant_name):
    torch.manual_seed(2)
    mha = MultiHeadAttention(64, 64, 32, 0.0, 8)
    variant = VARIANTS[variant_name](64, 64, 32, 0.0, 8).load_mha_weights(mha)
    x = torch.randn(2, 32, 64)
    torch.testing.assert_close(variant(x), mha(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant_name", list(VARIANTS))
def test_variant_dropout_only_in_training(variant_name):
    torch.manual_seed(3)
    variant = VARIANTS[variant_name](16, 16, 8, 0.5, 2)
    x = torch.randn(2, 8, 16)
    variant.eval()
    assert torch.equal(variant(x), variant(x))
    variant.train()
    assert not torch.equal(variant(x), variant(x))


@pytest.mark.parametrize("variant_name", list(VARIANTS))
def test_variant_errors(variant_name):
    cls = VARIANTS[variant_name]
    with pytest.raises(ValueError, match="must be divisible by num_heads"):
        cls(12, 12, 8, 0.0, 5)
    with pytest.raises(ValueError, match="9 tokens .* context_length=8"):
        cls(12, 12, 8, 0.0, 3)(torch.randn(1, 9, 12))
    with pytest.raises(ValueError, match="heads"):
        cls(12, 12, 8, 0.0, 3).load_mha_weights(MultiHeadAttention(12, 12, 8, 0.0, 2))
    with pytest.raises(ValueError, match="qkv_bias"):
        cls(12, 12, 8, 0.0, 3, qkv_bias=True).load_mha_weights(MultiHeadAttention(12, 12, 8, 0.0, 3))


def test_pytorch_class_needs_square_projection():
    with pytest.raises(ValueError, match=r"d_in \(8\) must equal d_out \(16\)"):
        MHAPyTorchClass(8, 16, 4, 0.0, 2)
