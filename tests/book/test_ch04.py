"""Chapter 4: the GPT model's size, its forward pass, greedy generation, and its errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from notebook_defs import load_notebook_definitions

from llms_from_scratch.ch04 import (
    GELU,
    GPT_CONFIG_124M,
    FeedForward,
    GPTModel,
    LayerNorm,
    TransformerBlock,
    generate_text_simple,
)

pytestmark = pytest.mark.usefixtures("one_thread")

FOLDER = Path(__file__).resolve().parents[2] / "ch04" / "01_main-chapter-code"

TINY = {"vocab_size": 97, "context_length": 12, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.1,
        "qkv_bias": False}


def _num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_124m_parameter_counts():
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = GPTModel(GPT_CONFIG_124M)
    total = _num_params(model)
    assert total == 163_009_536
    # GPT-2 ties the output head to the token embedding, so that matrix counts once
    assert total - _num_params(model.out_head) == 124_412_160
    assert model.out_head.weight.shape == model.tok_emb.weight.shape == (50257, 768)


def test_module_names_follow_the_contract():
    model = GPTModel(TINY)
    block = model.trf_blocks[0]
    assert isinstance(model.trf_blocks, nn.Sequential) and len(model.trf_blocks) == TINY["n_layers"]
    assert isinstance(block, TransformerBlock)
    for name in ("att", "ff", "norm1", "norm2", "drop_shortcut"):
        assert hasattr(block, name), name
    for name in ("W_query", "W_key", "W_value", "out_proj"):
        assert isinstance(getattr(block.att, name), nn.Linear), name
    assert block.att.mask.shape == (TINY["context_length"], TINY["context_length"])
    assert isinstance(block.ff.layers[1], GELU)
    assert model.out_head.bias is None
    assert {n for n, _ in model.final_norm.named_parameters()} == {"scale", "shift"}
    assert model.final_norm.eps == 1e-5


def test_layernorm_matches_torch():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16)
    ours = LayerNorm(16)
    ref = nn.LayerNorm(16, eps=1e-5)
    with torch.no_grad():
        ours.scale.normal_()
        ours.shift.normal_()
        ref.weight.copy_(ours.scale)
        ref.bias.copy_(ours.shift)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_gelu_is_the_tanh_approximation():
    x = torch.linspace(-6, 6, 401)
    torch.testing.assert_close(GELU()(x), nn.functional.gelu(x, approximate="tanh"), rtol=1e-6, atol=1e-6)


def test_feedforward_and_block_keep_the_shape():
    x = torch.randn(2, 7, TINY["emb_dim"])
    assert FeedForward(TINY)(x).shape == x.shape
    assert TransformerBlock(TINY)(x).shape == x.shape
    assert FeedForward(TINY).layers[0].out_features == 4 * TINY["emb_dim"]


def test_block_is_pre_layernorm():
    """With zeroed attention and feed-forward outputs, a pre-LN block is the identity (shortcut untouched)."""
    torch.manual_seed(0)
    block = TransformerBlock(TINY).eval()
    with torch.no_grad():
        for linear in (block.att.out_proj, block.ff.layers[2]):
            linear.weight.zero_()
            linear.bias.zero_()
    x = torch.randn(2, 5, TINY["emb_dim"]) * 10
    torch.testing.assert_close(block(x), x)


def test_forward_shape():
    torch.manual_seed(0)
    model = GPTModel(TINY).eval()
    idx = torch.randint(0, TINY["vocab_size"], (3, TINY["context_length"]))
    assert model(idx).shape == (3, TINY["context_length"], TINY["vocab_size"])


def test_generation_is_deterministic_and_appends_max_new_tokens():
    torch.manual_seed(123)
    model = GPTModel(TINY).eval()
    idx = torch.tensor([[5, 17, 3], [8, 1, 64]])
    out1 = generate_text_simple(model, idx, max_new_tokens=20, context_size=TINY["context_length"])
    out2 = generate_text_simple(model, idx, max_new_tokens=20, context_size=TINY["context_length"])
    assert out1.shape == (2, 3 + 20)
    assert torch.equal(out1[:, :3], idx)
    assert torch.equal(out1, out2)
    assert generate_text_simple(model, idx, max_new_tokens=0, context_size=4).shape == idx.shape


def test_generation_picks_the_argmax_of_the_last_position():
    torch.manual_seed(1)
    model = GPTModel(TINY).eval()
    idx = torch.tensor([[4, 9, 2, 7]])
    out = generate_text_simple(model, idx, max_new_tokens=1, context_size=TINY["context_length"])
    with torch.no_grad():
        expected = model(idx)[0, -1].argmax()
    assert out[0, -1] == expected


class _Recorder(nn.Module):
    """Stand-in model that records the inputs it sees and always predicts token (last id + 1) mod 10."""

    def __init__(self):
        super().__init__()
        self.lengths: list[int] = []

    def forward(self, idx):
        self.lengths.append(idx.shape[1])
        logits = torch.zeros(idx.shape[0], idx.shape[1], 10)
        logits[:, -1, :].scatter_(1, (idx[:, -1:] + 1) % 10, 1.0)
        return logits


def test_generation_crops_the_context():
    rec = _Recorder()
    out = generate_text_simple(rec, torch.tensor([[0, 1, 2]]), max_new_tokens=6, context_size=4)
    assert rec.lengths == [3, 4, 4, 4, 4, 4]
    assert out.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7, 8]]


def test_generation_beyond_the_context_length_works_with_cropping():
    torch.manual_seed(0)
    model = GPTModel(TINY).eval()
    idx = torch.randint(0, TINY["vocab_size"], (1, TINY["context_length"]))
    out = generate_text_simple(model, idx, max_new_tokens=5, context_size=TINY["context_length"])
    assert out.shape == (1, TINY["context_length"] + 5)


def test_too_long_input_names_the_context_length():
    model = GPTModel(TINY)
    idx = torch.zeros(1, TINY["context_length"] + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="context_length is 12"):
        model(idx)
    with pytest.raises(ValueError, match="context_length is 12"):
        generate_text_simple(model, idx, max_new_tokens=1, context_size=TINY["context_length"] + 5)


def test_unbatched_input_is_explained():
    with pytest.raises(ValueError, match="unsqueeze"):
        GPTModel(TINY)(torch.tensor([1, 2, 3]))


def test_bad_generation_arguments():
    model = GPTModel(TINY)
    idx = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_text_simple(model, idx, max_new_tokens=-1, context_size=4)
    with pytest.raises(ValueError, match="context_size"):
        generate_text_simple(model, idx, max_new_tokens=1, context_size=0)


def test_heads_must_divide_the_width():
    cfg = dict(TINY, n_heads=5)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        GPTModel(cfg)


# ---------------------------------------------------------------------------- notebooks agree with the package


@pytest.fixture(scope="module")
def nb():
    return load_notebook_definitions(FOLDER / "ch04.ipynb")


def test_notebook_config_is_the_package_config(nb):
    assert nb.GPT_CONFIG_124M == GPT_CONFIG_124M


@pytest.mark.parametrize("name", ["LayerNorm", "FeedForward", "TransformerBlock", "GPTModel"])
def test_notebook_and_package_modules_agree(nb, name):
    import llms_from_scratch.ch04 as pkg

    arg = TINY["emb_dim"] if name == "LayerNorm" else TINY
    torch.manual_seed(123)
    ours = getattr(nb, name)(arg).eval()
    torch.manual_seed(123)
    theirs = getattr(pkg, name)(arg).eval()
    sd_ours, sd_theirs = ours.state_dict(), theirs.state_dict()
    assert sd_ours.keys() == sd_theirs.keys()
    assert all(torch.equal(sd_ours[k], sd_theirs[k]) for k in sd_ours)
    if name == "GPTModel":
        x = torch.randint(0, TINY["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(0))
    else:
        x = torch.randn(2, 9, TINY["emb_dim"], generator=torch.Generator().manual_seed(0))
    assert torch.equal(ours(x), theirs(x))


def test_notebook_gelu_and_generation_agree(nb):
    x = torch.linspace(-5, 5, 101)
    assert torch.equal(nb.GELU()(x), GELU()(x))
    torch.manual_seed(3)
    model = GPTModel(TINY).eval()
    idx = torch.tensor([[1, 2, 3]])
    assert torch.equal(nb.generate_text_simple(model, idx, 15, 5), generate_text_simple(model, idx, 15, 5))


def test_notebook_shortcut_demo_shows_vanishing_gradients(nb):
    """The chapter's claim: without shortcuts the first layer's gradient is much smaller than with them."""
    sizes, x, target = [3, 3, 3, 3, 3, 1], torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[0.0]])
    torch.manual_seed(123)
    without = nb.weight_gradient_magnitudes(nb.ExampleDeepNeuralNetwork(sizes, use_shortcut=False), x, target)
    torch.manual_seed(123)
    with_ = nb.weight_gradient_magnitudes(nb.ExampleDeepNeuralNetwork(sizes, use_shortcut=True), x, target)
    assert without[0] < without[-1] / 10
    assert with_[0] > 100 * without[0]


def test_exercise_separate_dropout_equals_gpt_model_with_equal_rates():
    ex = load_notebook_definitions(FOLDER / "exercise-solutions.ipynb")
    rates = {"drop_rate_emb": 0.1, "drop_rate_attn": 0.1, "drop_rate_shortcut": 0.1}
    sep_cfg = {**{k: v for k, v in TINY.items() if k != "drop_rate"}, **rates}
    torch.manual_seed(9)
    ref = GPTModel(TINY).train()
    sep = ex.GPTModelSeparateDropout(sep_cfg).train()
    sep.load_state_dict(ref.state_dict())
    x = torch.randint(0, TINY["vocab_size"], (2, 8), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(4)
    a = ref(x)
    torch.manual_seed(4)
    b = sep(x)
    assert torch.equal(a, b)  # same weights, same dropout draws
    odd = ex.GPTModelSeparateDropout({**sep_cfg, "drop_rate_emb": 0.05, "drop_rate_attn": 0.2, "drop_rate_shortcut": 0.3})
    assert (odd.drop_emb.p, odd.trf_blocks[0].att.dropout.p, odd.trf_blocks[0].drop_shortcut.p) == (0.05, 0.2, 0.3)
    assert len(odd.trf_blocks) == TINY["n_layers"]


def test_gpt_script_runs_end_to_end(capsys):
    spec = importlib.util.spec_from_file_location("ch04_gpt_script", FOLDER / "gpt.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    text = script.main(["--prompt", "Hello, I am", "--max-new-tokens", "3"])  # quick mode: 2 blocks
    out = capsys.readouterr().out
    assert text.startswith("Hello, I am") and len(text) > len("Hello, I am")
    assert "2 blocks" in out and "output tokens" in out
