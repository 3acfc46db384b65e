"""Loading a GGUF file with its weights kept quantized (``load_gguf_quantized``), on a tiny file written here with
the ``gguf`` package's writer and quantizers (``support/tiny_gguf.py``), and on SmolLM2-135M-Instruct (slow).

The reference is always the same integer weights dequantized to float32: ``load_gguf`` (which dequantizes every
tensor) where the quantized model keeps the file's formats, else ``dequantized_copy`` of the quantized model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_gguf import LAYER_FORMATS, tiny_config, write_tiny_gguf

from llms_from_scratch.models import load_gguf, resolve
from llms_from_scratch.models.gguf_quantized import load_gguf_quantized
from llms_from_scratch.quant import (
    QuantizedEmbedding,
    QuantizedLinear,
    dequantized_copy,
    set_kernel,
    to_gguf_bytes,
)
from llms_from_scratch.serving.generation import generate

gguf = pytest.importorskip("gguf")
pytestmark = pytest.mark.usefixtures("one_thread")

# relative logit error of int8 / int4 against the file's own (mostly 4-bit) weights, measured on the tiny file
# (seeds 0-2): int8 0.3-0.4%, int4 in groups of 32 2-4%; the bounds are about three times that
REQUANTIZED_BOUND = {"int8": 0.015, "int4": 0.12}


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, write_tiny_gguf(path)


@pytest.fixture(scope="module")
def untied_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "untied.gguf"
    write_tiny_gguf(path, tie=False, seed=1)
    return path


def prompt(seed: int = 0, batch: int = 2, length: int = 12) -> torch.Tensor:
    vocab = tiny_config().vocab_size
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def float_matrices(model: torch.nn.Module) -> list[str]:
    """Floating tensors shaped like a quantized weight matrix: a float copy of one would show up here."""
    shapes = {(m.out_features, m.in_features) for m in model.modules() if isinstance(m, QuantizedLinear)}
    shapes |= {(m.num_embeddings, m.embedding_dim) for m in model.modules() if isinstance(m, QuantizedEmbedding)}
    return [name for name, t in [*model.named_parameters(), *model.named_buffers()]
            if t.is_floating_point() and tuple(t.shape) in shapes]


def test_blocks_stay_in_the_file_format_byte_for_byte(tiny_file):
    path, _ = tiny_file
    model = load_gguf_quantized(path, head="file", kernel="plain")
    reader = gguf.GGUFReader(str(path))
    stored = {t.name: t for t in reader.tensors}
    block = model.trf_blocks[1]
    assert isinstance(model.tok_emb, QuantizedEmbedding) and model.tok_emb.scheme == "q8_0"
    for gguf_name, layer in [("ffn_down", block.ff.fc3), ("attn_v", block.att.W_value),
                             ("attn_output", block.att.out_proj)]:
        assert isinstance(layer, QuantizedLinear) and layer.scheme == LAYER_FORMATS[gguf_name].lower()
        assert np.array_equal(to_gguf_bytes(layer.quantized_weight()), stored[f"blk.1.{gguf_name}.weight"].data)
    # the tied head reads the embedding's own codes: no second copy
    assert model.out_head.codes.data_ptr() == model.tok_emb.codes.data_ptr()
    assert float_matrices(model) == []


def test_same_numbers_as_the_dequantizing_loader(tiny_file):
    path, original = tiny_file
    quantized = load_gguf_quantized(path, head="file", kernel="plain")
    reference = load_gguf(path)
    ids = prompt()
    with torch.no_grad():
        got, expected = quantized(ids), reference(ids)
    # the plain path dequantizes to the same float32 weights and multiplies by the same op: identical logits,
    # the RoPE row permutation done on the codes included
    assert torch.equal(got, expected)
    with torch.no_grad():  # and the file is a faithful 4- to 8-bit picture of the model it was written from
        assert (got - original(ids)).norm() <= 0.1 * original(ids).norm()
    assert torch.equal(generate(quantized, ids[:1], 10), generate(reference, ids[:1], 10))


def test_no_quantized_tensor_is_dequantized_whole(tiny_file, monkeypatch):
    path, _ = tiny_file
    real = gguf.quants.dequantize

    def only_floats(data, qtype):
        assert qtype.name in ("F32", "F16", "BF16"), f"a {qtype.name} tensor was dequantized while loading"
        return real(data, qtype)

    monkeypatch.setattr(gguf.quants, "dequantize", only_floats)
    for head in ("file", "int8"):
        load_gguf_quantized(path, head=head, kernel="plain")


@pytest.mark.parametrize("kernel", ["plain", "int4pack"])
def test_int8_head_greedy_equals_the_dequantized_float_model(tiny_file, kernel):
    path, _ = tiny_file
    model = load_gguf_quantized(path, kernel="plain")  # head="int8" by default
    assert model.out_head.scheme == "int8" and model.out_head.group_size == model.out_head.in_features
    assert model.out_head.codes.data_ptr() != model.tok_emb.codes.data_ptr()
    if kernel != "plain":  # PyTorch's 4-bit kernel on the Q4_0/Q4_1 layers: the same tokens, logits within 1e-4
        for layer in model.modules():
            if isinstance(layer, QuantizedLinear) and layer.bits == 4:
                set_kernel(layer, kernel, rows=1)
    reference = dequantized_copy(model)
    assert not any(isinstance(m, QuantizedLinear) for m in reference.modules())
    ids = prompt(1, batch=1)
    assert torch.equal(generate(model, ids, 16), generate(reference, ids, 16))


@pytest.mark.parametrize("scheme", ["int8", "int4"])
def test_requantized_layers(tiny_file, scheme):
    path, _ = tiny_file
    model = load_gguf_quantized(path, scheme, kernel="plain")
    schemes = {m.scheme for m in model.trf_blocks.modules() if isinstance(m, QuantizedLinear)}
    assert schemes == {scheme}
    assert model.tok_emb.scheme == "q8_0"  # the embedding stays as the file has it
    ids = prompt(2)
    with torch.no_grad():
        got, expected = model(ids), load_gguf(path)(ids)
        assert (got - expected).norm() <= REQUANTIZED_BOUND[scheme] * expected.norm()
        assert torch.equal(got, dequantized_copy(model)(ids))


def test_untied_head_and_bfloat16(untied_file):
    kept = load_gguf_quantized(untied_file, head="file", kernel="plain")
    assert kept.out_head.scheme == "q8_0" and kept.out_head.codes.data_ptr() != kept.tok_emb.codes.data_ptr()
    as_int8 = load_gguf_quantized(untied_file, kernel="plain")
    assert as_int8.out_head.scheme == "int8"
    half = load_gguf_quantized(untied_file, head="file", dtype=torch.bfloat16, kernel="auto")
    assert half.new_cache(1, 8).keys_per_layer[0].dtype == torch.bfloat16  # the cache follows the model's dtype
    ids = prompt(3)
    with torch.no_grad():
        expected = load_gguf(untied_file)(ids)
        assert torch.equal(kept(ids), expected)
        got = half(ids)
        assert got.dtype == torch.bfloat16
        assert (got.float() - expected).norm() <= 0.02 * expected.norm()


def test_bad_arguments_are_named(tiny_file):
    path, _ = tiny_file
    with pytest.raises(ValueError, match="quantize must be one of gguf, int8, int4"):
        load_gguf_quantized(path, "int2")
    with pytest.raises(ValueError, match="head must be one of int8, file"):
        load_gguf_quantized(path, head="fp32")


@pytest.mark.slow
def test_smollm2_quantized_greedy_equals_its_dequantized_weights():
    _, path = resolve("smollm2-135m-instruct")
    ids = torch.tensor([[1, 504, 3458, 282, 2114, 314, 4649, 30]])
    kept = load_gguf_quantized(path, head="file", kernel="plain")
    reference = load_gguf(path)
    assert torch.equal(generate(kept, ids, 6), generate(reference, ids, 6))
    int8_head = load_gguf_quantized(path)  # int8 head, kernels chosen by measuring
    assert torch.equal(generate(int8_head, ids, 6), generate(dequantized_copy(int8_head), ids, 6))
