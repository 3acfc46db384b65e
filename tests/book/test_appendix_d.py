"""Appendix D: the warmup + cosine schedule, gradient clipping, and train_model; notebook and package agree."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from notebook_defs import load_notebook_definitions

from llms_from_scratch import appendix_d
from llms_from_scratch.ch02 import create_dataloader_v1
from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.data import gpt2_encoding, read_text

NOTEBOOK = Path(__file__).resolve().parents[2] / "appendix-D" / "01_main-chapter-code" / "appendix-D.ipynb"
TINY = {"vocab_size": 50257, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 1, "drop_rate": 0.1,
        "qkv_bias": False}


@pytest.fixture(scope="module")
def nb():
    return load_notebook_definitions(NOTEBOOK)


def test_schedule_shape():
    lrs = [appendix_d.warmup_cosine_lr(s, 10, 50, peak_lr=1e-3, initial_lr=1e-5, min_lr=1e-6) for s in range(50)]
    assert lrs[0] == 1e-5 and lrs[10] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-6)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # warmup rises
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # decay falls
    mid = 10 + (49 - 10) / 2
    assert appendix_d.warmup_cosine_lr(mid, 10, 50, 1e-3, 1e-5, 1e-6) == pytest.approx((1e-3 + 1e-6) / 2)
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        appendix_d.warmup_cosine_lr(0, 50, 50, 1e-3)


def test_notebook_schedule_and_gradient_helpers_match_package(nb):
    for step in range(0, 60, 3):
        assert nb.warmup_cosine_lr(step, 12, 60, 1e-3, 2e-5, 3e-6) == appendix_d.warmup_cosine_lr(step, 12, 60, 1e-3,
                                                                                                  2e-5, 3e-6)
    torch.manual_seed(0)
    model = GPTModel(TINY)
    assert nb.find_highest_gradient(model) == appendix_d.find_highest_gradient(model) == float("-inf")
    model(torch.randint(0, 50257, (2, 8))).logsumexp(-1).mean().backward()
    assert nb.find_highest_gradient(model) == appendix_d.find_highest_gradient(model)
    assert appendix_d.find_highest_gradient(model) == max(p.grad.max().item() for p in model.parameters())


def test_clipping_scales_the_largest_gradient_by_max_norm_over_norm():
    torch.manual_seed(0)
    model = GPTModel(TINY)
    model(torch.randint(0, 50257, (2, 8))).logsumexp(-1).mean().mul(100).backward()
    before = appendix_d.find_highest_gradient(model)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0).item()
    assert norm > 1.0
    assert appendix_d.find_highest_gradient(model) == pytest.approx(before / norm, rel=1e-5)


@pytest.mark.slow  # trains end to end
def test_notebook_train_model_matches_package(nb, capsys):
    text = read_text("the-verdict")[:2500]
    results = []
    for module in (nb, appendix_d):
        torch.manual_seed(123)
        train = create_dataloader_v1(text[:2200], batch_size=2, max_length=16, stride=16)
        val = create_dataloader_v1(text[2200:], batch_size=2, max_length=16, stride=16, shuffle=False, drop_last=False)
        model = GPTModel(TINY)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        out = module.train_model(model, train, val, optimizer, "cpu", n_epochs=1, eval_freq=4, eval_iter=1,
                                 start_context="Every", tokenizer=gpt2_encoding(), warmup_steps=3)
        results.append((out, [p.detach().clone() for p in model.parameters()]))
    (nb_out, nb_params), (pkg_out, pkg_params) = results
    assert nb_out == pkg_out
    assert all(torch.equal(a, b) for a, b in zip(nb_params, pkg_params))
    lrs = pkg_out[3]
    assert lrs[0] == 3e-05 and max(lrs) == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-6)
    assert not any(math.isnan(x) for x in pkg_out[0])
