"""Appendix D as the book calls it: train_model's parameters in the book's order, orig_book_version's clipping."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from llms_from_scratch import appendix_d
from llms_from_scratch.ch02 import create_dataloader_v1
from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.data import gpt2_encoding, read_text

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"vocab_size": 50257, "context_length": 32, "emb_dim": 16, "n_heads": 2, "n_layers": 1, "drop_rate": 0.1,
        "qkv_bias": False}
BOOK_PARAMETERS = ["model", "train_loader", "val_loader", "optimizer", "device", "n_epochs", "eval_freq",
                   "eval_iter", "start_context", "tokenizer", "warmup_steps", "initial_lr", "min_lr",
                   "orig_book_version"]


def test_signature_follows_the_book():
    parameters = inspect.signature(appendix_d.train_model).parameters
    positional = [p for p in parameters.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert [p.name for p in positional] == BOOK_PARAMETERS
    assert {p.name: p.default for p in positional if p.default is not inspect.Parameter.empty} == {
        "initial_lr": 3e-05, "min_lr": 1e-6, "orig_book_version": False}
    assert parameters["max_norm"].kind is inspect.Parameter.KEYWORD_ONLY  # our extra comes after the book's


def _one_batch_loaders():
    """The book's test setup, shrunk: one training and one validation batch from The Verdict."""
    text = read_text("the-verdict")
    split = int(0.9 * len(text))
    train = create_dataloader_v1(text[:split], batch_size=1, max_length=TINY["context_length"],
                                 stride=TINY["context_length"], shuffle=False)
    val = create_dataloader_v1(text[split:], batch_size=1, max_length=TINY["context_length"],
                               stride=TINY["context_length"], shuffle=False, drop_last=False)
    return (DataLoader(Subset(train.dataset, range(1)), batch_size=1),
            DataLoader(Subset(val.dataset, range(1)), batch_size=1))


@pytest.mark.parametrize("orig_book_version", [False, True])
def test_book_call_trains_and_clips_from_the_documented_step(orig_book_version, monkeypatch, capsys):
    clipped_at = []
    real_clip = torch.nn.utils.clip_grad_norm_
    step = {"n": -1}

    def counting_clip(parameters, max_norm, *args, **kwargs):
        clipped_at.append(step["n"])
        return real_clip(parameters, max_norm, *args, **kwargs)

    def counting_step(original):
        def wrapped(*args, **kwargs):
            step["n"] += 1
            return original(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", counting_clip)
    torch.manual_seed(123)
    model = GPTModel(TINY)
    train_loader, val_loader = _one_batch_loaders()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.001, weight_decay=0.1)
    optimizer.zero_grad = counting_step(optimizer.zero_grad)  # zero_grad opens every training step
    n_epochs, warmup_steps = 6, 2
    # the book's call, all positional: the last argument is orig_book_version
    train_losses, val_losses, tokens_seen, lrs = appendix_d.train_model(
        model, train_loader, val_loader, optimizer, "cpu", n_epochs, 5, 1, "Every effort moves you",
        gpt2_encoding(), warmup_steps, 1e-5, 1e-5, orig_book_version)
    first = warmup_steps + 1 if orig_book_version else warmup_steps
    assert clipped_at == list(range(first, n_epochs))
    assert len(lrs) == n_epochs and lrs[0] == 1e-5 and max(lrs) == pytest.approx(1e-3)
    assert len(train_losses) == len(val_losses) == len(tokens_seen) == 2  # evaluated at steps 0 and 5
    assert round(train_losses[0], 1) == pytest.approx(10.8, abs=0.3)  # about ln(50257) for random weights
    assert train_losses[-1] < train_losses[0]
    assert tokens_seen == [TINY["context_length"], n_epochs * TINY["context_length"]]
    out = capsys.readouterr().out
    assert "Ep 1 (Iter 000000)" in out and out.count("Every effort moves you") == n_epochs


def test_max_norm_is_keyword_only_and_none_turns_clipping_off(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: calls.append(1))
    torch.manual_seed(0)
    model = GPTModel(TINY)
    train_loader, val_loader = _one_batch_loaders()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.001)
    args = (model, train_loader, val_loader, optimizer, "cpu", 3, 5, 1, "Every", gpt2_encoding(), 1)
    with pytest.raises(TypeError):
        appendix_d.train_model(*args, 1e-5, 1e-6, False, 1.0)
    appendix_d.train_model(*args, max_norm=None)
    assert calls == []
