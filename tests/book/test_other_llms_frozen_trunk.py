"""ch05/14_ch05-07_with_other_llms/frozen_trunk.py: training the top blocks on stored hidden states computes what the
whole model computes, padding included."""

import sys
from pathlib import Path

import pytest
import torch

from llms_from_scratch.models import build_model, get_config

FOLDER = Path(__file__).resolve().parents[2] / "ch05/14_ch05-07_with_other_llms"
sys.path.insert(0, str(FOLDER))  # the helper lives beside the notebooks, not in the package

from frozen_trunk import FeatureDataset, TopOfModel, collate_left_pad, trunk_features  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = get_config("smollm2-135m").replace(vocab_size=97, emb_dim=32, n_layers=3, n_heads=4, n_kv_groups=2,
                                             head_dim=8, hidden_dim=48, context_length=64)
    return build_model(cfg).eval()


MESSAGES = [[5, 17, 3, 88, 41, 9, 2], [60, 1], [7, 7, 30, 12], [90]]


@pytest.mark.parametrize("n_top", [1, 3])
def test_top_of_model_on_stored_states_matches_the_whole_model(model, n_top):
    features = trunk_features(model, MESSAGES, n_top=n_top, batch_size=3)
    assert [f.shape for f in features] == [torch.Size([len(m), 32]) for m in MESSAGES]
    x, labels = collate_left_pad([(f, i % 2) for i, f in enumerate(features)])
    assert x.shape == (4, 7, 32) and labels.tolist() == [0, 1, 0, 1]
    with torch.no_grad():
        got = TopOfModel(model, n_top)(x)[:, -1]  # (batch, vocab): last position = last real token
        for row, ids in enumerate(MESSAGES):
            expected = model(torch.tensor([ids]))[0, -1]
            torch.testing.assert_close(got[row], expected, rtol=1e-5, atol=1e-5)


def test_gradients_reach_only_the_top_blocks(model):
    features = trunk_features(model, MESSAGES, n_top=1)
    x, _ = collate_left_pad([(f, 0) for f in features])
    top = TopOfModel(model, 1)
    top(x)[:, -1].sum().backward()
    assert all(p.grad is not None for p in model.trf_blocks[-1].parameters())
    assert all(p.grad is None for p in model.trf_blocks[0].parameters())
    model.zero_grad(set_to_none=True)


def test_errors_name_the_problem(model):
    with pytest.raises(ValueError, match="n_top must be between 1"):
        trunk_features(model, MESSAGES, n_top=4)
    with pytest.raises(ValueError, match="labels"):
        FeatureDataset([torch.zeros(2, 32)], [0, 1])
    gpt2 = build_model(get_config("gpt2-124m").replace(n_layers=1, emb_dim=16, n_heads=2, vocab_size=50,
                                                       context_length=8))
    with pytest.raises(ValueError, match="RoPE"):
        TopOfModel(gpt2, 1)
