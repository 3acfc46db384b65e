"""Chapter 3: the package's attention classes agree with the notebook's, and behave as the chapter says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from notebook_defs import load_notebook_definitions

from llms_from_scratch import ch03

FOLDER = Path(__file__).resolve().parents[2] / "ch03" / "01_main-chapter-code"
NOTEBOOK = FOLDER / "ch03.ipynb"


@pytest.fixture(scope="module")
def nb():
    return load_notebook_definitions(NOTEBOOK)


def test_summary_notebook_repeats_the_same_classes():
    summary = load_notebook_definitions(FOLDER / "multihead-attention.ipynb")
    for name, args, shape in CASES[2:]:
        torch.manual_seed(5)
        ours = getattr(summary, name)(*args)
        torch.manual_seed(5)
        pkg = getattr(ch03, name)(*args)
        x = _x(*shape)
        assert torch.equal(ours(x), pkg(x)), name


def _x(*shape):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(7))


# name, constructor arguments, input shape
CASES = [
    ("SelfAttention_v1", (3, 2), (6, 3)),
    ("SelfAttention_v2", (3, 2), (6, 3)),
    ("CausalAttention", (3, 2, 6, 0.0), (2, 6, 3)),
    ("MultiHeadAttentionWrapper", (3, 2, 6, 0.0, 3), (2, 6, 3)),
    ("MultiHeadAttention", (8, 12, 10, 0.0, 4), (2, 7, 8)),
]


@pytest.mark.parametrize(("name", "args", "shape"), CASES, ids=[c[0] for c in CASES])
def test_notebook_and_package_agree(nb, name, args, shape):
    torch.manual_seed(123)
    ours = getattr(nb, name)(*args)
    torch.manual_seed(123)
    pkg = getattr(ch03, name)(*args)
    # same seed, same construction order: same weights, same buffers
    sd_ours, sd_pkg = ours.state_dict(), pkg.state_dict()
    assert sd_ours.keys() == sd_pkg.keys()
    for key in sd_ours:
        assert torch.equal(sd_ours[key], sd_pkg[key]), key
    x = _x(*shape)
    assert torch.equal(ours(x), pkg(x))


def test_mha_with_dropout_agrees_on_the_same_seed(nb):
    torch.manual_seed(1)
    ours = nb.MultiHeadAttention(8, 8, 6, 0.5, 2).train()
    torch.manual_seed(1)
    pkg = ch03.MultiHeadAttention(8, 8, 6, 0.5, 2).train()
    x = _x(3, 6, 8)
    torch.manual_seed(2)
    a = ours(x)
    torch.manual_seed(2)
    b = pkg(x)
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "make",
    [lambda: ch03.CausalAttention(4, 8, 10, 0.0), lambda: ch03.MultiHeadAttention(4, 8, 10, 0.0, 2)],
    ids=["CausalAttention", "MultiHeadAttention"],
)
def test_causal_attention_ignores_the_future(make):
    torch.manual_seed(0)
    layer = make()
    x = _x(1, 10, 4)
    y = x.clone()
    y[:, 6:] = torch.randn(1, 4, 4)  # change only tokens 6..9
    torch.testing.assert_close(layer(x)[:, :6], layer(y)[:, :6], rtol=0, atol=0)
    assert not torch.allclose(layer(x)[:, 6:], layer(y)[:, 6:])


def test_first_token_attends_only_to_itself():
    torch.manual_seed(0)
    ca = ch03.CausalAttention(3, 2, 6, 0.0)
    x = _x(2, 6, 3)
    # softmax over a single visible score is 1, so token 0's output is its own value vector
    torch.testing.assert_close(ca(x)[:, 0], ca.W_value(x)[:, 0])


def test_multihead_equals_wrapper_with_copied_weights():
    torch.manual_seed(0)
    heads, head_dim, d_in, T = 3, 4, 5, 7
    wrapper = ch03.MultiHeadAttentionWrapper(d_in, head_dim, T, 0.0, heads)
    fused = ch03.MultiHeadAttention(d_in, heads * head_dim, T, 0.0, heads)
    with torch.no_grad():
        for h, head in enumerate(wrapper.heads):
            rows = slice(h * head_dim, (h + 1) * head_dim)
            fused.W_query.weight[rows] = head.W_query.weight
            fused.W_key.weight[rows] = head.W_key.weight
            fused.W_value.weight[rows] = head.W_value.weight
        fused.out_proj.weight.copy_(torch.eye(heads * head_dim))
        fused.out_proj.bias.zero_()
    x = _x(2, T, d_in)
    torch.testing.assert_close(fused(x), wrapper(x), rtol=1e-6, atol=1e-6)


def test_gpt2_sized_mha_parameter_count():
    mha = ch03.MultiHeadAttention(768, 768, 1024, 0.0, 12)
    assert sum(p.numel() for p in mha.parameters()) == 2_360_064
    assert mha.head_dim == 64
    assert mha.mask.shape == (1024, 1024)
    assert "mask" in dict(mha.named_buffers())


def test_qkv_bias():
    mha = ch03.MultiHeadAttention(8, 8, 4, 0.0, 2, qkv_bias=True)
    assert all(getattr(mha, n).bias is not None for n in ("W_query", "W_key", "W_value"))
    assert ch03.MultiHeadAttention(8, 8, 4, 0.0, 2).W_query.bias is None


@pytest.mark.parametrize("cls", [ch03.MultiHeadAttention, ch03.MultiHeadAttentionWrapper])
def test_bad_num_heads(cls):
    with pytest.raises(ValueError, match="num_heads must be at least 1"):
        cls(4, 4, 4, 0.0, 0)


def test_d_out_not_divisible_by_num_heads():
    with pytest.raises(ValueError, match=r"d_out \(10\) must be divisible by num_heads \(4\)"):
        ch03.MultiHeadAttention(3, 10, 6, 0.0, 4)


@pytest.mark.parametrize("cls", [ch03.CausalAttention, ch03.MultiHeadAttention])
def test_input_longer_than_the_mask(cls):
    layer = cls(3, 2, 6, 0.0, 2) if cls is ch03.MultiHeadAttention else cls(3, 2, 6, 0.0)
    with pytest.raises(ValueError, match="7 tokens .* context_length=6"):
        layer(torch.rand(1, 7, 3))
