"""QuantizedLinear (plain path, PyTorch's kernels, the measured choice between them) and quantize_model on tiny
models: the chapter 4 GPTModel and a SmolLM2-shaped DecoderLM with random weights."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.models import build_model, get_config
from llms_from_scratch.quant import (
    PLAIN,
    SCHEMES,
    QuantizedLinear,
    choose_kernels,
    dequantized_copy,
    kernel_candidates,
    quantize_model,
    quantize_weight,
    set_kernel,
)
from llms_from_scratch.quant.kernels import KERNELS, TOLERANCE, kernel_error
from llms_from_scratch.serving.generation import generate

# Relative logit error ||logits_q - logits|| / ||logits|| measured on the tiny models below (seeds 0-2):
# 8-bit 0.11-0.13%, 4-bit 1.8-2.2%. The bounds are three times that; the ratio between them follows from the
# formats: four fewer bits make the step, and so the error, about 2**4 = 16 times larger.
LOGIT_BOUND = {"int8": 0.004, "q8_0": 0.004, "int4": 0.07, "q4_0": 0.07, "q4_1": 0.07}


def tiny_decoder(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = get_config("smollm2-135m", n_layers=2, emb_dim=64, n_heads=4, n_kv_groups=2, head_dim=16, hidden_dim=128,
                     vocab_size=256, context_length=64)
    return build_model(cfg).eval()


def tiny_gpt(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = {"vocab_size": 256, "context_length": 64, "emb_dim": 64, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0,
           "qkv_bias": True}
    return GPTModel(cfg).eval()


def token_ids(seed: int = 0, batch: int = 2, length: int = 24) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_plain_path_is_dequantize_then_linear(scheme):
    linear = nn.Linear(64, 48)
    layer = QuantizedLinear.from_linear(linear, scheme)
    x = torch.randn(3, 5, 64)
    expected = F.linear(x, layer.dequantize(), linear.bias)
    assert torch.equal(layer(x), expected)
    assert layer(x).shape == (3, 5, 48)
    assert not list(layer.parameters())  # codes and scales are buffers: nothing for an optimizer to move
    # gradients still flow to the input (as for adapters trained on a quantized base model)
    x.requires_grad_(True)
    layer(x).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_offered_kernel_agrees_with_the_plain_path(scheme):
    torch.manual_seed(0)
    layer = QuantizedLinear.from_linear(nn.Linear(256, 64), scheme)
    candidates = kernel_candidates(layer)
    assert candidates[0] == PLAIN
    for name in candidates[1:]:
        if KERNELS[name].quantizes_input:  # W8A8: other numbers by design (tests/quant/test_quant_dynamic.py)
            continue
        set_kernel(layer, name, rows=1)
        assert kernel_error(layer, name, rows=1, dtype=torch.float32) <= TOLERANCE[torch.float32]
        x = torch.randn(1, 1, 256)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), layer.plain_forward(x), rtol=1e-4, atol=1e-4)


def test_a_kernel_is_used_only_for_the_rows_and_dtype_it_was_measured_for(monkeypatch):
    layer = QuantizedLinear.from_linear(nn.Linear(64, 32), "int8")
    if "int8pack" not in kernel_candidates(layer):
        pytest.skip("this PyTorch has no _weight_int8pack_mm")
    set_kernel(layer, "int8pack", rows=1)
    calls = []
    real = torch.ops.aten._weight_int8pack_mm
    monkeypatch.setattr(torch.ops.aten, "_weight_int8pack_mm", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad():
        layer(torch.randn(1, 64))
        layer(torch.randn(4, 64))  # prefill-sized: the plain path
        layer(torch.randn(1, 64, dtype=torch.float64))
    assert len(calls) == 1
    with pytest.raises(ValueError, match="does not apply"):
        set_kernel(layer, "int4pack")


def test_choose_kernels_keeps_an_agreeing_candidate_and_frees_the_others():
    model = quantize_model(tiny_decoder(), "int4", kernel="plain")
    choices = choose_kernels(model, rows=1, budget_s=0.02)
    layers = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    assert set(choices.values()) <= {PLAIN, "int8pack", "int4pack"}
    for layer in layers:
        assert layer.kernel in kernel_candidates(layer)
        if layer.kernel == PLAIN:
            assert layer.kernel_weight is None and layer.kernel_scales is None
        else:
            assert layer.kernel_error <= TOLERANCE[torch.float32]
    ids = token_ids()
    with torch.no_grad():
        cache = model.new_cache(1, 8)
        fast = model(ids[:1, :1], cache=cache)  # one row: the chosen kernels
        plain = dequantized_copy(model)(ids[:1, :1])
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make", [tiny_decoder, tiny_gpt], ids=["DecoderLM", "GPTModel"])
def test_quantize_model_replaces_the_linear_layers_by_new_modules(make):
    model = make()
    before = {name: type(m) for name, m in model.named_modules()}
    embedding = model.tok_emb
    head = model.out_head
    old_linear = next(m for name, m in model.named_modules() if type(m) is nn.Linear and "out_head" not in name)
    out = quantize_model(model, "int8", kernel="plain")
    assert out is model
    replaced = [n for n, m in model.named_modules() if isinstance(m, QuantizedLinear)]
    assert replaced == [n for n, t in before.items() if t is nn.Linear and n != "out_head"]
    assert model.tok_emb is embedding and model.out_head is head  # embedding and head left as they were
    assert type(old_linear) is nn.Linear  # a new module took its place; the old object is unchanged
    assert isinstance(quantize_model(make(), "q8_0", head=True, kernel="plain").out_head, QuantizedLinear)


@pytest.mark.parametrize("make", [tiny_decoder, tiny_gpt], ids=["DecoderLM", "GPTModel"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_quantized_logits_stay_within_the_measured_bound(make, scheme):
    base = make()
    ids = token_ids()
    with torch.no_grad():
        reference = base(ids)
        logits = quantize_model(copy.deepcopy(base), scheme, kernel="plain")(ids)
    relative = float((logits - reference).norm() / reference.norm())
    assert 0 < relative <= LOGIT_BOUND[scheme]


def test_four_bits_cost_about_sixteen_times_the_error_of_eight():
    base = tiny_decoder()
    ids = token_ids()
    with torch.no_grad():
        reference = base(ids)

        def error(scheme):
            return float((quantize_model(copy.deepcopy(base), scheme, kernel="plain")(ids) - reference).norm())

        ratio = error("int4") / error("int8")
    assert 8 < ratio < 32


@pytest.mark.parametrize("scheme", ["int8", "int4", "q4_1"])
def test_quantized_greedy_equals_greedy_of_the_dequantized_weights(scheme):
    model = quantize_model(tiny_decoder(), scheme, kernel="plain")
    for layer in model.modules():  # decode through PyTorch's kernel wherever one is offered
        if isinstance(layer, QuantizedLinear):
            set_kernel(layer, kernel_candidates(layer)[-1], rows=1)
    reference = dequantized_copy(model)  # plain nn.Linear layers holding the same dequantized numbers
    assert not any(isinstance(m, QuantizedLinear) for m in reference.modules())
    prompt = token_ids(length=6)
    assert torch.equal(generate(model, prompt, 12), generate(reference, prompt, 12))


def test_state_dict_round_trip_into_a_freshly_quantized_model():
    model = quantize_model(tiny_gpt(0), "int4", group_size=32, kernel="plain")
    other = quantize_model(tiny_gpt(1), "int4", group_size=32, kernel="plain")
    other.load_state_dict(model.state_dict())
    ids = token_ids()
    with torch.no_grad():
        assert torch.equal(model(ids), other(ids))
    assert not any("kernel_" in k for k in model.state_dict())  # the kernels' layouts are derived, not saved


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown quantization scheme"):
        quantize_model(tiny_gpt(), "fp8")
    with pytest.raises(ValueError, match="kernel must be 'auto' or 'plain'"):
        quantize_model(tiny_gpt(), "int8", kernel="fast")
    with pytest.raises(ValueError, match="does not divide"):
        QuantizedLinear(quantize_weight(torch.randn(8, 64), "int4", 48))
