"""GGUF block formats Q8_0, Q4_0, Q4_1: bit for bit as the ``gguf`` package (which reproduces ggml) writes and
reads them, and within the error each format's arithmetic allows."""

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

from llms_from_scratch.quant import (
    BITS_PER_WEIGHT,
    dequantize,
    from_gguf_bytes,
    quantize_block_format,
    round_half_away,
    to_gguf_bytes,
)

GGML_TYPES = {"q8_0": GGMLQuantizationType.Q8_0, "q4_0": GGMLQuantizationType.Q4_0, "q4_1": GGMLQuantizationType.Q4_1}
F16_REL = 2.0**-11  # float16 keeps 11 significant bits: rounding a scale moves it by at most this fraction


def edge_case_weights() -> torch.Tensor:
    """Random rows of varied scale plus blocks built to hit the rounding rules' corner cases."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(24, 128, generator=g) * torch.logspace(-3, 2, 24)[:, None]
    w[0, :32] = 0.0  # an all-zero block: scale 0
    w[1, :32] = 3.25  # a constant block: Q4_1's max == min
    w[2, :32] = torch.arange(32) - 15.5  # exact halves at scale 1 (max |w| = 127 below)
    w[2, 31] = 127.0
    w[3, :32] = torch.linspace(-8, 8, 32)  # +8 and -8: the signed maximum picks the first on a tie
    w[4, :32] = -torch.rand(32, generator=g)  # all negative: Q4_0's d is positive
    w[5, :32] = torch.rand(32, generator=g)  # all positive: Q4_0's d is negative
    w[6, 32:64] = torch.tensor([1e-8] * 31 + [-1e-8])  # tiny scales (float16 subnormals)
    return w


@pytest.mark.parametrize("fmt", ["q8_0", "q4_0", "q4_1"])
def test_quantized_bytes_equal_the_gguf_package(fmt):
    w = edge_case_weights()
    ours = to_gguf_bytes(quantize_block_format(w, fmt))
    reference = gguf_quantize(w.numpy(), GGML_TYPES[fmt])
    assert ours.dtype == reference.dtype == np.uint8 and ours.shape == reference.shape
    assert np.array_equal(ours, reference), f"{int((ours != reference).sum())} bytes differ"


def test_q8_0_needs_rounding_halves_away_from_zero():
    # scale 1 (max |w| = 127) and weights at exact halves: torch.round (halves to even) would give other codes
    w = edge_case_weights()[2:3, :32]
    assert not torch.equal(torch.round(w), round_half_away(w))
    codes = quantize_block_format(w, "q8_0").codes
    assert torch.equal(codes.float(), round_half_away(w))
    assert round_half_away(torch.tensor([2.5, -2.5, 0.49999997, -0.5, 1.5])).tolist() == [3, -3, 0, -1, 2]


@pytest.mark.parametrize("fmt", ["q8_0", "q4_0", "q4_1"])
def test_dequantize_and_reading_gguf_bytes_match_the_gguf_package(fmt):
    w = edge_case_weights()
    stored = gguf_quantize(w.numpy(), GGML_TYPES[fmt])
    reference = gguf_dequantize(stored, GGML_TYPES[fmt])
    read = from_gguf_bytes(stored, fmt, tuple(w.shape))
    assert np.array_equal(dequantize(read).numpy(), reference)
    assert np.array_equal(dequantize(quantize_block_format(w, fmt)).numpy(), reference)
    assert np.array_equal(to_gguf_bytes(read), stored)  # reading and writing the bytes is lossless


@pytest.mark.parametrize("fmt", ["q8_0", "q4_0", "q4_1"])
def test_bits_per_weight_and_size_match_the_file_layout(fmt):
    w = edge_case_weights()
    qw = quantize_block_format(w, fmt)
    assert qw.bits_per_weight() == BITS_PER_WEIGHT[fmt]
    assert qw.nbytes() == gguf_quantize(w.numpy(), GGML_TYPES[fmt]).nbytes


def test_error_bounds_follow_from_each_format():
    """Derived from the format, per block with d the stored (float16) scale:
    Q8_0 and Q4_1 round to the nearest level, so |w - dq| <= d/2, plus the error of rounding d (and Q4_1's
    minimum m) to float16, which the code (at most 127 or 15) multiplies. Q4_0 maps the signed largest weight to
    code 0 (= -8 d), so the opposite extreme, +8 d, lies beyond the top code 15 (+7 d): a full step d is the
    bound there, half a step everywhere else."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(64, 256, generator=g) * torch.rand(64, 1, generator=g) * 4
    slack = 1 + 1e-5  # float32 arithmetic on the way

    def blocks(t):
        return t.reshape(64, 8, 32)

    q8 = quantize_block_format(w, "q8_0")
    d = q8.scales.float()[..., None]
    err = blocks((w - dequantize(q8)).abs())
    assert bool((err <= d * (0.5 + 127 * F16_REL) * slack + 1e-12).all())

    q41 = quantize_block_format(w, "q4_1")
    d, m = q41.scales.float()[..., None], q41.minimums.float()[..., None]
    err = blocks((w - dequantize(q41)).abs())
    assert bool((err <= (d * (0.5 + 15 * F16_REL) + m.abs() * F16_REL) * slack + 1e-12).all())

    q40 = quantize_block_format(w, "q4_0")
    d = q40.scales.float().abs()[..., None]
    err = blocks((w - dequantize(q40)).abs())
    assert bool((err <= d * (1 + 8 * F16_REL) * slack).all())
    # the full step happens, and only next to the clipped top: elsewhere half a step holds
    clipped = blocks(w) / q40.scales.float()[..., None] > 7.5  # w/d beyond the top level (code 15 = +7 d)
    assert bool(clipped.any()) and float(err[clipped].max()) > 0.5 * float(d.max(-1).values.min())
    assert bool((err[~clipped] <= (d * (0.5 + 8 * F16_REL) * slack).expand_as(err)[~clipped]).all())


def test_rows_must_split_into_whole_blocks():
    with pytest.raises(ValueError, match="multiple of 32"):
        quantize_block_format(torch.randn(4, 48), "q8_0")
    with pytest.raises(ValueError, match="unknown GGUF block format"):
        quantize_block_format(torch.randn(4, 64), "q5_0")
    with pytest.raises(ValueError, match="do not hold"):
        from_gguf_bytes(np.zeros(10, dtype=np.uint8), "q8_0", (1, 32))


def test_the_smollm2_file_reads_and_requantizes_to_its_own_bytes():
    """Real blocks written by llama.cpp's converter: reading them, dequantizing and quantizing again gives the
    file's bytes back (Q4_1 layers and the Q8_0 token embedding)."""
    from llms_from_scratch.data import AssetUnavailableError, fetch
    from llms_from_scratch.files.gguf import open_gguf

    try:
        path = fetch("smollm2-135m-instruct-gguf", quiet=True)
    except AssetUnavailableError as exc:
        pytest.skip(f"the SmolLM2 GGUF file is not available here: {str(exc).splitlines()[0]}")
    tensors = {t.name: t for t in open_gguf(path).tensors}
    for name in ("blk.0.attn_q.weight", "blk.29.ffn_down.weight", "token_embd.weight"):
        t = tensors[name]
        fmt = t.tensor_type.name.lower()
        stored = np.asarray(t.data)
        read = from_gguf_bytes(stored, fmt, (int(t.shape[1]), int(t.shape[0])))
        assert np.array_equal(dequantize(read).numpy(), gguf_dequantize(stored, t.tensor_type))
        assert np.array_equal(to_gguf_bytes(quantize_block_format(dequantize(read), fmt)), stored), name
