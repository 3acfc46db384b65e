"""Patch boundaries from crafted entropies, threshold tuning, and next-byte entropies reset at newlines."""

import math

import pytest
import torch

from llms_from_scratch.blt import (
    entropy_patch_starts,
    fixed_patch_starts,
    next_byte_entropies,
    patch_ids,
    patch_lengths,
    tune_threshold,
)
from llms_from_scratch.ch04 import GPTModelFast

pytestmark = pytest.mark.usefixtures("one_thread")


def _bytes(text: str) -> torch.Tensor:
    return torch.tensor(list(text.encode("utf-8")))


def test_entropy_patches_on_a_crafted_sequence():
    data = _bytes("the cat\nsat")
    #           t    h    e    ' '  c    a    t    \n   s    a    t
    ent = torch.tensor([5.0, 0.2, 0.1, 0.9, 3.1, 0.4, 0.3, 1.5, 0.2, 2.5, 0.1])
    starts = entropy_patch_starts(ent, data, threshold=1.0)
    # byte 0 always; 'c' (3.1), '\n' (1.5) and 'a' (2.5) exceed 1.0; 's' follows the newline
    assert torch.nonzero(starts).flatten().tolist() == [0, 4, 7, 8, 9]
    assert patch_ids(starts).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 3, 4, 4]
    assert patch_lengths(starts).tolist() == [4, 3, 1, 1, 2]
    # a threshold above every entropy leaves only the forced starts; no reset leaves only byte 0
    assert torch.nonzero(entropy_patch_starts(ent, data, threshold=9.0)).flatten().tolist() == [0, 8]
    assert torch.nonzero(entropy_patch_starts(ent, data, 9.0, reset_byte=None)).flatten().tolist() == [0]


def test_fixed_patches_and_a_window_always_opening_a_patch():
    assert fixed_patch_starts(7, 3).tolist() == [True, False, False, True, False, False, True]
    assert patch_ids(torch.tensor([[False, False, True, False]])).tolist() == [[0, 0, 1, 1]]
    with pytest.raises(ValueError, match="at least 1"):
        fixed_patch_starts(5, 0)


@pytest.mark.parametrize("target", [2.0, 3.5, 6.0])
def test_tuned_threshold_hits_the_target_mean_patch_length(target):
    gen = torch.Generator().manual_seed(0)
    data = torch.randint(97, 123, (5000,), generator=gen)
    data[torch.randint(0, 5000, (40,), generator=gen)] = ord("\n")
    ent = torch.rand(5000, generator=gen) * 4
    theta = tune_threshold(ent, data, target)
    n_patches = int(entropy_patch_starts(ent, data, theta).sum())
    assert n_patches == round(5000 / target)
    assert abs(5000 / n_patches - target) < 0.01


def test_tuning_refuses_a_target_that_newlines_already_undercut():
    data = _bytes("a\nb\nc\nd\n")
    with pytest.raises(ValueError, match="newlines alone"):
        tune_threshold(torch.zeros(len(data)), data, target_mean=4.0)


def _tiny_gpt(seed=0):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=256, context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0, qkv_bias=False)
    return GPTModelFast(cfg).eval()


def _entropy(logits):
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)


def test_entropies_match_the_model_and_reset_at_newlines():
    model = _tiny_gpt()
    data = _bytes("abc de\nfgh\nij")
    ent = next_byte_entropies(model, data, context_length=16)
    assert ent[0] == pytest.approx(math.log(256))
    with torch.no_grad():
        first_line = _entropy(model(data[None, :6]))[0]  # "abc de": predicts "bc de" and the newline
        second = _entropy(model(data[None, 6:10]))[0]  # read from the newline: predicts "fgh" and "\n"
    torch.testing.assert_close(ent[1:7], first_line, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent[7:11], second, rtol=1e-5, atol=1e-5)
    # what comes before a newline cannot change the entropies after it
    changed = data.clone()
    changed[:6] = _bytes("zzzzzz")
    torch.testing.assert_close(next_byte_entropies(model, changed, 16)[7:], ent[7:])


def test_long_lines_are_read_in_pieces_of_the_context_length():
    model = _tiny_gpt()
    data = torch.randint(97, 123, (40,), generator=torch.Generator().manual_seed(1))
    ent = next_byte_entropies(model, data, context_length=16, batch_size=2)
    with torch.no_grad():
        piece = _entropy(model(data[None, 16:32]))[0]  # the second piece predicts bytes 17..32
    torch.testing.assert_close(ent[17:33], piece, rtol=1e-5, atol=1e-5)
