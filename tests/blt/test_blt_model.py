"""The byte latent transformer: causality through the whole pipeline, padding, FLOPs, training to a budget and
bits per byte on cases computed by hand."""

import math

import pytest
import torch
from torch import nn

from llms_from_scratch.blt import (
    BLTConfig,
    ByteLatentTransformer,
    bits_per_byte,
    blt_batches,
    blt_forward_flops,
    entropy_patch_starts,
    fixed_patch_starts,
    gpt_batches,
    lr_at,
    next_byte_entropies,
    patch_ids,
    stream_windows,
    train_to_budget,
)
from llms_from_scratch.ch04 import GPTModelFast

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = BLTConfig(context_length=32, local_dim=16, local_heads=2, latent_dim=24, latent_heads=2, latent_layers=1)
GPT_TINY = dict(vocab_size=256, context_length=32, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0, qkv_bias=False)


def _model(seed=0):
    torch.manual_seed(seed)
    model = ByteLatentTransformer(TINY).eval()
    with torch.no_grad():
        model.start.normal_()  # a zero start vector would hide a mix-up between it and a real patch
    return model


@pytest.mark.parametrize("patching", ["entropy", "fixed"])
def test_changing_a_byte_changes_no_earlier_prediction(patching):
    torch.manual_seed(1)
    entropy_model = GPTModelFast(GPT_TINY).eval()
    model = _model()
    data = torch.tensor(list(b"a small film\nwith a big heart ."))  # 31 bytes: 30 inputs, 30 targets
    ent = next_byte_entropies(entropy_model, data, context_length=32)
    threshold = ent[1:].median().item()

    def logits(stream):
        if patching == "entropy":
            starts = entropy_patch_starts(next_byte_entropies(entropy_model, stream, 32), stream, threshold)
        else:
            starts = fixed_patch_starts(len(stream), 3)
        with torch.no_grad():
            return model(stream[None, :-1], patch_ids(starts)[None])[0]

    base = logits(data)
    for k in (1, 5, 13, 22, 29):
        changed = data.clone()
        changed[k] = (int(data[k]) + 37) % 256
        out = logits(changed)
        # position i predicts byte i + 1 from bytes 0..i: positions before k must not move
        torch.testing.assert_close(out[:k], base[:k], rtol=0, atol=1e-6)
        assert not torch.allclose(out[k:], base[k:]), "the change should reach the later predictions"


def test_padding_patches_of_a_shorter_row_changes_nothing():
    model = _model()
    gen = torch.Generator().manual_seed(3)
    data = torch.randint(0, 256, (2, 21), generator=gen)
    starts = torch.stack([fixed_patch_starts(21, 2), fixed_patch_starts(21, 7)])  # 10 and 3 patches
    ids = patch_ids(starts)
    with torch.no_grad():
        both = model(data[:, :-1], ids)
        alone = [model(data[i : i + 1, :-1], ids[i : i + 1])[0] for i in range(2)]
    torch.testing.assert_close(both[0], alone[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(both[1], alone[1], rtol=1e-5, atol=1e-5)


def test_blt_flops_by_hand():
    cfg = BLTConfig(vocab_size=256, local_dim=8, latent_dim=16, encoder_layers=1, decoder_layers=1, latent_layers=1)
    t, p = 12, 3

    def block(d, n):  # qkv + QK^T + AV + out proj + feed-forward
        return 2 * n * d * 3 * d + 2 * n * n * d * 2 + 2 * n * d * d + 2 * n * d * 4 * d * 2

    expected = block(8, t) + 2 * p * 8 * 16 + block(16, p) + 2 * t * 16 * 8 + block(8, t) + 2 * t * 8 * 256
    assert blt_forward_flops(cfg, t, p) == expected
    with pytest.raises(ValueError, match="between 1 and"):
        blt_forward_flops(cfg, 4, 5)


def test_stream_windows_predict_every_id_but_the_first_once():
    windows = stream_windows(23, 5)
    assert windows == [(0, 6), (5, 11), (10, 16), (15, 21), (20, 23)]
    predicted = [i for start, stop in windows for i in range(start + 1, stop)]
    assert predicted == list(range(1, 23))


class FixedLogits(nn.Module):
    """Logits that do not depend on the input: log-probabilities ``logp`` at every position."""

    def __init__(self, logp):
        super().__init__()
        self.logp = nn.Parameter(logp)

    def forward(self, idx):
        return self.logp.expand(*idx.shape, -1)


def test_bits_per_byte_on_known_cases():
    cfg = dict(GPT_TINY, context_length=4)
    data = torch.randint(0, 256, (11,))
    # uniform over 256 bytes: exactly 8 bits for each of the 10 predicted bytes
    uniform = FixedLogits(torch.zeros(256))
    assert bits_per_byte(uniform, gpt_batches(data, cfg, 2, cycle=False)) == pytest.approx(8.0)
    # three tokens spelling 1, 2 and 4 bytes; the model gives them 1/2, 1/4 and 1/4
    lengths = torch.tensor([1, 2, 4])
    ids = torch.tensor([0, 1, 2, 2, 0])  # predicted: 1, 2, 2, 0 -> 2 + 2 + 2 + 1 bits over 2 + 4 + 4 + 1 bytes
    model = FixedLogits(torch.tensor([0.5, 0.25, 0.25]).log())
    bpb = bits_per_byte(model, gpt_batches(ids, dict(cfg, vocab_size=3), 1, lengths, cycle=False))
    assert bpb == pytest.approx(7 / 11)


def test_training_stays_within_the_budget_and_lowers_the_loss():
    text = b"the film is good . the film is bad . " * 40
    data = torch.tensor(list(text))
    starts = fixed_patch_starts(len(data), 4)
    model = ByteLatentTransformer(TINY)
    per_step = next(blt_batches(data, starts, TINY, 4)).flops
    budget = int(per_step * 40.5)
    log = train_to_budget(model, blt_batches(data, starts, TINY, 4), budget, lr=1e-2)
    assert len(log.losses) == 40 and log.flops[-1] <= budget
    assert sum(log.losses[-5:]) / 5 < 0.6 * sum(log.losses[:5]) / 5
    assert log.bits_per_byte[0] == pytest.approx(log.losses[0] / math.log(2))
    assert bits_per_byte(model, blt_batches(data, starts, TINY, 4, cycle=False)) < log.bits_per_byte[0]


def test_learning_rate_warms_up_then_decays_to_its_floor():
    assert lr_at(0.0, 1.0) == 0.0
    assert lr_at(0.025, 1.0) == pytest.approx(0.5)
    assert lr_at(0.05, 1.0) == pytest.approx(1.0)
    assert lr_at(1.0, 1.0) == pytest.approx(0.1)
