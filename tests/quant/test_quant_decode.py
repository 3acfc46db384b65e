"""The pieces that make quantized decoding fast and small: row-wise conversion (``requantize``), the quantized
token table (``QuantizedEmbedding``), stacked projections (``stack_rows``, ``stack_projections``,
``choose_stacking``) and products on cast activations (``compute_dtype``, ``choose_kernels(activations=...)``)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from llms_from_scratch.models import build_model, get_config
from llms_from_scratch.nn.decode_layout import FusedGateUpSwiGLU, FusedQKVAttention
from llms_from_scratch.quant import (
    PLAIN,
    QuantizedEmbedding,
    QuantizedLinear,
    choose_kernels,
    choose_stacking,
    dequantize,
    kernel_candidates,
    quantize_model,
    quantize_weight,
    requantize,
    stack_projections,
    stack_rows,
)
from llms_from_scratch.quant.kernels import TOLERANCE
from llms_from_scratch.serving.generation import generate

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_quantized(scheme: str = "int8", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cfg = get_config("smollm2-135m", n_layers=2, emb_dim=64, n_heads=4, n_kv_groups=2, head_dim=16, hidden_dim=128,
                     vocab_size=256, context_length=64)
    return quantize_model(build_model(cfg).eval(), scheme, kernel="plain")


@pytest.mark.parametrize("scheme", ["int8", "int4", "q4_1"])
def test_requantize_by_row_slices_equals_quantizing_the_whole_matrix(scheme):
    source = quantize_weight(torch.randn(100, 64), "q8_0")
    whole = quantize_weight(dequantize(source), scheme)
    sliced = requantize(source, scheme, chunk_rows=7)  # slices that do not divide the rows
    assert torch.equal(dequantize(sliced), dequantize(whole))
    assert torch.equal(sliced.codes, whole.codes) and sliced.scheme == scheme


def test_stack_rows_is_the_rows_one_after_another_and_refuses_mixed_formats():
    parts = [quantize_weight(torch.randn(rows, 64), "q4_1") for rows in (32, 16, 16)]
    stacked = stack_rows(parts)
    assert stacked.shape == (64, 64)
    assert torch.equal(dequantize(stacked), torch.cat([dequantize(p) for p in parts]))
    with pytest.raises(ValueError, match="only weights of one format"):
        stack_rows([parts[0], quantize_weight(torch.randn(16, 64), "q8_0")])


def test_quantized_embedding_returns_the_dequantized_rows_in_the_models_dtype():
    table = quantize_weight(torch.randn(50, 64), "q8_0")
    embedding = QuantizedEmbedding(table)
    ids = torch.tensor([[3, 7, 3], [49, 0, 1]])
    assert torch.equal(embedding(ids), dequantize(table)[ids])
    embedding.to(torch.bfloat16)
    assert embedding(ids).dtype == torch.bfloat16 and embedding.weight.dtype == torch.bfloat16
    assert embedding.codes.dtype == torch.int8  # the codes are not floats: a dtype change leaves them alone


@pytest.mark.parametrize("scheme", ["int8", "q4_1"])
def test_stacked_projections_compute_the_same_numbers(scheme):
    model = tiny_quantized(scheme)
    stacked = stack_projections(copy.deepcopy(model))
    block = stacked.trf_blocks[0]
    assert type(block.att) is FusedQKVAttention and type(block.ff) is FusedGateUpSwiGLU
    assert block.att.qkv.out_features == 64 + 2 * 32 and block.ff.gate_up.out_features == 2 * 128
    ids = torch.randint(0, 256, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(stacked(ids), model(ids), rtol=1e-5, atol=1e-5)
    assert torch.equal(generate(stacked, ids[:1], 8), generate(model, ids[:1], 8))


def test_choose_stacking_keeps_the_models_outputs():
    model = tiny_quantized("int8")
    reference = copy.deepcopy(model)
    chosen = choose_stacking(model, rows=1, budget_s=0.02)
    assert chosen is model
    ids = torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cache = chosen.new_cache(1, 8)
        chosen(ids, cache=cache)
        step = chosen(ids[:, :1], cache=cache, last_token_only=True)  # one row: the chosen kernels
        plain_cache = reference.new_cache(1, 8)
        reference(ids, cache=plain_cache)
        expected = reference(ids[:, :1], cache=plain_cache, last_token_only=True)
    torch.testing.assert_close(step, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_compute_dtype_casts_the_product_only():
    layer = QuantizedLinear(quantize_weight(torch.randn(32, 64), "int8"))
    x = torch.randn(3, 64)
    layer.compute_dtype = torch.bfloat16
    y = layer(x)
    assert y.dtype == torch.float32
    expected = torch.nn.functional.linear(x.bfloat16(), layer.dequantize(torch.bfloat16)).float()
    assert torch.equal(y, expected)


def test_bfloat16_activations_only_where_allowed_and_within_their_tolerance():
    model = tiny_quantized("int8")
    choose_kernels(model, rows=1, budget_s=0.02)
    assert all(m.compute_dtype is None for m in model.modules() if isinstance(m, QuantizedLinear))
    choices = choose_kernels(model, rows=1, budget_s=0.02, activations=(torch.bfloat16,))
    assert all(c.split()[0] in (PLAIN, "int8pack", "int4pack") for c in choices.values())
    for layer in model.modules():
        if isinstance(layer, QuantizedLinear):
            assert layer.kernel in kernel_candidates(layer)
            assert layer.compute_dtype in (None, torch.bfloat16)
            limit = TOLERANCE[layer.compute_dtype or torch.float32]
            assert layer.kernel_error <= limit
