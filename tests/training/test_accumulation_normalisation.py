"""How the book's fine-tuning loss is normalised, on chapter 7 batches whose target counts differ.

The book's ``calc_loss_batch`` is the mean over one batch's target tokens (``-100`` skipped), and
``train_model_simple`` takes one optimizer step per batch, so each step is exact for its batch. Averaging those
batch means over several batches (accumulation done naively, or ``calc_loss_loader``) is not the mean over all
their tokens; weighting each batch by its share of the global target count (``micro_batch_loss``) is.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.ch05 import calc_loss_batch, calc_loss_loader, train_model_simple
from llms_from_scratch.ch07 import custom_collate_fn
from llms_from_scratch.training.token_loss import count_targets, micro_batch_loss

CFG = {"vocab_size": 64, "context_length": 32, "emb_dim": 16, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
       "qkv_bias": False}
PAD = 63  # the tiny vocabulary's end-of-text token


def _collate(items):
    return custom_collate_fn(items, pad_token_id=PAD)


def _texts(lengths, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, PAD, (n,), generator=generator).tolist() for n in lengths]


# batch A: two short examples, batch B: two long ones, so their target counts differ a lot
SHORT, LONG = _texts([3, 5], seed=1), _texts([20, 24], seed=2)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GPTModel(CFG)


def _grad(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def _token_mean(model, x, y):
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="sum") / count_targets(y)


def test_batches_have_different_target_counts_and_padding_is_masked():
    ya, yb, yf = _collate(SHORT)[1], _collate(LONG)[1], _collate(SHORT + LONG)[1]
    assert (count_targets(ya), count_targets(yb)) == (3 + 5, 20 + 24)  # one target per token, end-of-text included
    assert count_targets(yf) == count_targets(ya) + count_targets(yb)  # padding to a longer batch adds no targets


def test_one_book_step_is_the_token_mean_gradient_of_its_batch(model, capsys):
    class Tokenizer:  # just enough for the sample the loop prints after each epoch
        def encode(self, text, allowed_special=None):
            return [1, 2, 3]

        def decode(self, ids):
            return " ".join(map(str, ids))

    x, y = _collate(SHORT + LONG)
    expected = copy.deepcopy(model)
    grad = _grad(expected, _token_mean(expected, x, y))
    lr = 0.5
    with torch.no_grad():
        flat = torch.cat([p.flatten() for p in expected.parameters()]) - lr * grad

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    train_model_simple(model, [(x, y)], [(x, y)], optimizer, "cpu", num_epochs=1, eval_freq=1, eval_iter=1,
                       start_context="x", tokenizer=Tokenizer())
    capsys.readouterr()
    got = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (got - flat).abs().max() < 1e-6


def test_mean_of_batch_means_is_not_the_full_batch_gradient(model):
    (xa, ya), (xb, yb), (xf, yf) = _collate(SHORT), _collate(LONG), _collate(SHORT + LONG)
    full = _grad(model, _token_mean(model, xf, yf))
    book_mean = _grad(model, (calc_loss_batch(xa, ya, model, "cpu") + calc_loss_batch(xb, yb, model, "cpu")) / 2)
    relative = (book_mean - full).norm() / full.norm()
    assert relative > 0.05, f"a mean of batch means should be far from the token mean here, got {relative:.2e}"

    n_global = count_targets(ya) + count_targets(yb)
    weighted = _grad(model, micro_batch_loss(calc_loss_batch(xa, ya, model, "cpu"), count_targets(ya), n_global)
                     + micro_batch_loss(calc_loss_batch(xb, yb, model, "cpu"), count_targets(yb), n_global))
    assert (weighted - full).abs().max() < 1e-6


def test_mean_of_batch_means_is_exact_when_target_counts_are_equal(model):
    first, second = _texts([6, 10], seed=3), _texts([8, 8], seed=4)  # 16 targets in each batch
    (xa, ya), (xb, yb), (xf, yf) = _collate(first), _collate(second), _collate(first + second)
    assert count_targets(ya) == count_targets(yb)
    full = _grad(model, _token_mean(model, xf, yf))
    book_mean = _grad(model, (calc_loss_batch(xa, ya, model, "cpu") + calc_loss_batch(xb, yb, model, "cpu")) / 2)
    assert (book_mean - full).abs().max() < 1e-6


def test_calc_loss_loader_reports_a_mean_of_batch_means(model):
    batches = [_collate(SHORT), _collate(LONG)]
    with torch.no_grad():
        means = [calc_loss_batch(x, y, model, "cpu").item() for x, y in batches]
        counts = [count_targets(y) for _, y in batches]
        reported = calc_loss_loader(batches, model, "cpu")
        token_mean = _token_mean(model, *_collate(SHORT + LONG)).item()
    assert reported == pytest.approx(sum(means) / 2, abs=1e-6)
    assert token_mean == pytest.approx(sum(m * n for m, n in zip(means, counts)) / sum(counts), abs=1e-5)
    assert abs(reported - token_mean) > 1e-3
