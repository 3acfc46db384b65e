"""Chapter 5: the notebook's definitions agree with the package, and quick-mode training matches the reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from notebook_defs import load_notebook_definitions

from llms_from_scratch import ch05
from llms_from_scratch.ch02 import create_dataloader_v1
from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.data import gpt2_encoding, read_text

CHAPTER = Path(__file__).resolve().parents[2] / "ch05" / "01_main-chapter-code"
REFERENCE = json.loads((CHAPTER / "reference-losses.json").read_text())

TINY = {"vocab_size": 50257, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2, "drop_rate": 0.1,
        "qkv_bias": False}


@pytest.fixture(scope="module")
def nb():
    return load_notebook_definitions(CHAPTER / "ch05.ipynb")


def _tiny_loaders(seed=123):
    text = read_text("the-verdict")[:1500]
    torch.manual_seed(seed)
    train = create_dataloader_v1(text[:1300], batch_size=2, max_length=16, stride=16, shuffle=True, drop_last=True)
    val = create_dataloader_v1(text[1300:], batch_size=2, max_length=16, stride=16, shuffle=False, drop_last=False)
    return train, val


def test_notebook_text_helpers_match_package(nb):
    tokenizer = gpt2_encoding()
    ids = nb.text_to_token_ids("Every effort moves you<|endoftext|>", tokenizer)
    assert torch.equal(ids, ch05.text_to_token_ids("Every effort moves you<|endoftext|>", tokenizer))
    assert ids.tolist() == [[6109, 3626, 6100, 345, 50256]]
    assert nb.token_ids_to_text(ids, tokenizer) == ch05.token_ids_to_text(ids, tokenizer)


def test_notebook_losses_match_package(nb):
    train, _ = _tiny_loaders()
    torch.manual_seed(0)
    model = GPTModel(TINY).eval()
    x, y = next(iter(train))
    assert torch.equal(nb.calc_loss_batch(x, y, model, "cpu"), ch05.calc_loss_batch(x, y, model, "cpu"))
    torch.manual_seed(1)
    a = nb.calc_loss_loader(train, model, "cpu", num_batches=3)
    torch.manual_seed(1)
    assert a == ch05.calc_loss_loader(train, model, "cpu", num_batches=3)


@pytest.mark.parametrize("options", [
    {}, {"temperature": 1.3}, {"temperature": 1.0, "top_k": 5}, {"temperature": 0.8, "top_p": 0.7},
    {"temperature": 1.0, "top_k": 20, "top_p": 0.9, "eos_id": 13},
])
def test_notebook_generate_matches_package(nb, options):
    torch.manual_seed(0)
    model = GPTModel(TINY).eval()
    idx = torch.randint(0, 50257, (2, 20), generator=torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    ours = ch05.generate(model, idx, 8, 16, **options)
    torch.manual_seed(3)
    assert torch.equal(nb.generate(model, idx, 8, 16, **options), ours)


def test_notebook_generate_rejects_bad_arguments_like_package(nb):
    model = GPTModel(TINY).eval()
    idx = torch.zeros(1, 1, dtype=torch.long)
    for bad in ({"top_k": 0}, {"top_p": 0.0}, {"temperature": -1.0}):
        with pytest.raises(ValueError) as from_nb:
            nb.generate(model, idx, 2, 16, **bad)
        with pytest.raises(ValueError) as from_pkg:
            ch05.generate(model, idx, 2, 16, **bad)
        assert str(from_nb.value) == str(from_pkg.value)


@pytest.mark.slow  # trains end to end
def test_notebook_training_loop_matches_package(nb, capsys):
    results = []
    for module in (nb, ch05):
        train, val = _tiny_loaders()
        torch.manual_seed(123)
        model = GPTModel(TINY)
        optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)
        losses = module.train_model_simple(model, train, val, optimizer, "cpu", num_epochs=1, eval_freq=5,
                                           eval_iter=2, start_context="Every effort", tokenizer=gpt2_encoding())
        results.append((losses, [p.detach().clone() for p in model.parameters()]))
    (nb_losses, nb_params), (pkg_losses, pkg_params) = results
    assert nb_losses == pkg_losses
    assert all(torch.equal(a, b) for a, b in zip(nb_params, pkg_params))
    assert nb.epoch_end_losses(*nb_losses, 100) == ch05.epoch_end_losses(*pkg_losses, 100)
    out = capsys.readouterr().out
    assert out.count("Ep 1 (Step 000000)") == 2


def test_notebook_plot_matches_package(nb, tmp_path):
    args = ([0.0, 0.5, 1.0], [10, 20, 30], [9.0, 8.0, 7.0], [9.5, 8.8, 8.4])
    fig_nb = nb.plot_losses(*args, save_path=tmp_path / "nb.png")
    fig_pkg = ch05.plot_losses(*args, save_path=tmp_path / "pkg.png")
    assert (tmp_path / "nb.png").stat().st_size > 0 and (tmp_path / "pkg.png").stat().st_size > 0
    labels = [[ax.get_xlabel() for ax in fig.axes] for fig in (fig_nb, fig_pkg)]
    assert labels[0] == labels[1] == ["Epochs", "Tokens seen"]


@pytest.mark.slow  # trains end to end
def test_quick_mode_training_matches_reference_losses(capsys):
    """Repeat the notebook's quick-mode run and compare every epoch with reference-losses.json."""
    reference = REFERENCE["modes"]["quick"]
    s = reference["settings"]
    cfg = s["config"]
    text = read_text("the-verdict")
    split_idx = int(s["train_ratio"] * len(text))
    torch.manual_seed(s["seed"])
    train_loader = create_dataloader_v1(text[:split_idx], batch_size=s["batch_size"], max_length=cfg["context_length"],
                                        stride=cfg["context_length"], drop_last=True, shuffle=True)
    val_loader = create_dataloader_v1(text[split_idx:], batch_size=s["batch_size"], max_length=cfg["context_length"],
                                      stride=cfg["context_length"], drop_last=False, shuffle=False)
    torch.manual_seed(s["seed"])
    model = GPTModel(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s["learning_rate"], weight_decay=s["weight_decay"])
    train_losses, val_losses, tokens_seen = ch05.train_model_simple(
        model, train_loader, val_loader, optimizer, "cpu", num_epochs=s["num_epochs"], eval_freq=s["eval_freq"],
        eval_iter=s["eval_iter"], start_context="Every effort moves you", tokenizer=gpt2_encoding(),
    )
    tokens_per_epoch = len(train_loader) * s["batch_size"] * cfg["context_length"]
    epochs = ch05.epoch_end_losses(train_losses, val_losses, tokens_seen, tokens_per_epoch)

    assert len(epochs) == len(reference["epochs"]) == s["num_epochs"]
    for ours, ref in zip(epochs, reference["epochs"]):
        assert ours["epoch"] == ref["epoch"]
        assert ours["train_loss"] == pytest.approx(ref["train_loss"], abs=reference["tolerance"])
        assert ours["val_loss"] == pytest.approx(ref["val_loss"], abs=reference["tolerance"])
    # the stated margin: training lowers the training loss by at least this much within these seeded steps
    assert train_losses[0] - train_losses[-1] >= reference["min_train_loss_drop"]


def test_full_mode_reference_covers_every_epoch():
    """The book-scale reference is complete: one entry per epoch of its settings, training loss falling."""
    full = REFERENCE["modes"]["full"]
    epochs = full["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, full["settings"]["num_epochs"] + 1))
    assert full["first_eval"]["train_loss"] > epochs[0]["train_loss"] > epochs[-1]["train_loss"]
