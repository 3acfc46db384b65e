"""This package's own grids (int8 and int4, symmetric and zero point, per channel and in groups): the codes, the
round trip's error bound, packing, storage size and the argument checks."""

import pytest
import torch

from llms_from_scratch.quant import (
    Grid,
    QuantizedWeight,
    dequantize,
    pack_int4,
    quantize_int4,
    quantize_int8,
    quantize_weight,
    unpack_int4,
)

SLACK = 1 + 1e-5  # float32 rounding of w / scale and of (q - zero) * scale


def weights(rows: int = 48, cols: int = 256, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * torch.logspace(-2, 1, rows)[:, None]
    w[:, 7] *= 20  # one outlier input column, as real layers have
    w[3] = w[3].abs()  # a row with no negative weight: the asymmetric grid must still hold 0.0
    w[5] = 0.0  # an all-zero row
    return w


def group_scales(qw: QuantizedWeight) -> torch.Tensor:
    """Each weight's scale (rows, cols)."""
    return qw.scales.float().repeat_interleave(qw.group_size, dim=1)


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [None, 128, 32])
def test_round_trip_error_is_at_most_half_a_step(bits, symmetric, group_size):
    """Derived from the grid: every weight lies inside its group's range, so rounding moves it by at most half a
    step (scale / 2); the asymmetric grid's rounded zero point shifts the range by under half a step, which the
    clamp absorbs at the same bound."""
    w = weights()
    if bits == 8:
        qw = quantize_int8(w, group_size, symmetric)
    else:
        qw = quantize_int4(w, group_size or 256, symmetric)
    err = (w - dequantize(qw)).abs()
    assert bool((err <= group_scales(qw) / 2 * SLACK).all())
    grid = Grid(bits, symmetric)
    codes = qw.int_codes()
    assert int(codes.min()) >= grid.qmin and int(codes.max()) <= grid.qmax
    assert torch.equal(dequantize(qw)[5], torch.zeros(256))  # zero stays exactly zero
    # the bound is not loose: rounding does use up most of half a step somewhere
    assert float((err / group_scales(qw)).max()) > 0.45


def test_codes_scales_and_storage_of_each_grid():
    w = weights()
    sym8 = quantize_int8(w)
    assert sym8.codes.dtype == torch.int8 and sym8.zeros == 0 and sym8.scales.shape == (48, 1)
    # absmax: the largest weight of each row lands exactly on code +-127
    assert torch.equal(sym8.codes.abs().amax(dim=1)[[0, 1, 2, 3, 4]], torch.full((5,), 127, dtype=torch.int8))
    asym8 = quantize_int8(w, symmetric=False)
    assert asym8.codes.dtype == torch.uint8 and asym8.zeros.dtype == torch.uint8
    int4 = quantize_int4(w, group_size=32)
    assert int4.codes.shape == (48, 128) and int4.scales.shape == (48, 8)
    # storage: codes plus float32 scales (and a byte of zero point per group when asymmetric)
    assert sym8.bits_per_weight() == 8 + 32 / 256
    assert int4.bits_per_weight() == 4 + (32 + 8) / 32
    assert quantize_int4(w, group_size=128, symmetric=True).bits_per_weight() == 4 + 32 / 128


def test_smaller_groups_and_asymmetric_grids_fit_closer():
    """Claims checked on weights with an outlier column: a group only pays for the outliers it holds, and a
    lopsided row wastes half of a symmetric grid."""
    w = weights()

    def rms(qw):
        return float((w - dequantize(qw)).pow(2).mean().sqrt())

    assert rms(quantize_int4(w, 32)) < rms(quantize_int4(w, 128)) < rms(quantize_int4(w, 256))
    assert rms(quantize_int8(w, 32)) < rms(quantize_int8(w))
    lopsided = w[3:4]
    sym = (lopsided - dequantize(quantize_int8(lopsided, symmetric=True))).abs().max()
    asym = (lopsided - dequantize(quantize_int8(lopsided, symmetric=False))).abs().max()
    assert float(asym) < 0.6 * float(sym)


def test_four_bit_codes_pack_two_per_byte_and_back():
    g = torch.Generator().manual_seed(2)
    codes = torch.randint(0, 16, (5, 64), generator=g, dtype=torch.uint8)
    packed = pack_int4(codes)
    assert packed.shape == (5, 32) and packed.dtype == torch.uint8
    assert torch.equal(unpack_int4(packed), codes)
    assert int(packed[0, 0]) == int(codes[0, 0]) | int(codes[0, 1]) << 4  # even column low, odd column high
    with pytest.raises(ValueError, match="even number of columns"):
        pack_int4(codes[:, :63])
    with pytest.raises(ValueError, match="0..15"):
        pack_int4(torch.full((1, 2), 16))


@pytest.mark.parametrize("scheme", ["int8", "int4", "q4_1"])
def test_selecting_rows_keeps_the_weight_quantized(scheme):
    w = weights()
    order = torch.randperm(w.shape[0], generator=torch.Generator().manual_seed(3))
    qw = quantize_weight(w, scheme)
    assert torch.equal(dequantize(qw.select_rows(order)), dequantize(qw)[order])


def test_scheme_names_and_arguments_are_checked():
    w = weights()
    assert quantize_weight(w, "int4").group_size == 32
    assert quantize_weight(w, "int8").group_size == 256
    assert quantize_weight(w, "q4_1").scheme == "q4_1"
    with pytest.raises(ValueError, match="unknown quantization scheme 'int3'"):
        quantize_weight(w, "int3")
    with pytest.raises(ValueError, match="fixed block of 32"):
        quantize_weight(w, "q8_0", group_size=64)
    with pytest.raises(ValueError, match="does not divide the 256 input columns"):
        quantize_weight(w, "int4", group_size=96)
    with pytest.raises(ValueError, match="scales has shape"):
        QuantizedWeight(torch.zeros(4, 32, dtype=torch.int8), torch.ones(4, 2), 8, 32)
