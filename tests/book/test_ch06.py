"""Chapter 6: exact row handling of the SMS corpus, balanced split counts, SpamDataset, and a seeded fine-tune."""

import csv

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from llms_from_scratch.base_model import load_base_gpt
from llms_from_scratch.ch06 import (
    SpamDataset,
    balance_rows,
    calc_accuracy_loader,
    calc_loss_loader,
    classify_review,
    convert_to_classifier,
    count_trainable,
    create_spam_loaders,
    load_model,
    prepare_spam_splits,
    read_csv,
    read_sms_spam,
    save_model,
    split_rows,
    train_classifier_simple,
    write_csv,
)
from llms_from_scratch.data import gpt2_encoding


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return prepare_spam_splits(tmp_path_factory.mktemp("spam"))


def test_corpus_rows_read_without_quoting():
    rows = read_sms_spam()
    assert len(rows) == 5574
    assert sum(label == "ham" for label, _ in rows) == 4827
    assert sum(label == "spam" for label, _ in rows) == 747


def test_read_sms_spam_rejects_other_files(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("ham\tfine\nmaybe\tnot a label\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        read_sms_spam(path)


def test_balanced_split_counts(splits):
    balanced = balance_rows(read_sms_spam())
    assert len(balanced) == 1494
    assert sum(label for label, _ in balanced) == 747
    parts = [read_csv(splits[name]) for name in ("train", "validation", "test")]
    assert [len(p) for p in parts] == [1045, 149, 300]
    # the three parts are disjoint and together are the balanced set
    assert sorted(parts[0] + parts[1] + parts[2]) == sorted(balanced)
    assert split_rows(balanced, 0.7, 0.1) == tuple(parts)  # seeded: same split every time


def test_csv_round_trip_keeps_quotes_commas_and_newlines(tmp_path):
    rows = [(0, 'He said "hi", then left'), (1, "line one\nline two"), (0, "")]
    assert read_csv(write_csv(rows, tmp_path / "x.csv")) == rows


def test_spam_dataset_pads_and_truncates(tmp_path):
    tokenizer = gpt2_encoding()
    path = write_csv([(0, "Hello there"), (1, "WIN a free prize now, call today")], tmp_path / "d.csv")
    long_ids = tokenizer.encode("WIN a free prize now, call today")
    dataset = SpamDataset(path, tokenizer)
    assert dataset.max_length == len(long_ids)
    ids, label = dataset[0]
    assert ids.tolist() == tokenizer.encode("Hello there") + [50256] * (len(long_ids) - 2)
    assert label.item() == 0 and dataset[1][1].item() == 1
    short = SpamDataset(path, tokenizer, max_length=3, pad_token_id=0)
    assert short[1][0].tolist() == long_ids[:3]
    assert short[0][0].tolist() == tokenizer.encode("Hello there") + [0]
    with pytest.raises(ValueError, match="max_length"):
        SpamDataset(path, tokenizer, max_length=0)


def test_read_csv_rejects_wrong_header(tmp_path):
    path = tmp_path / "x.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["label", "text"], [0, "x"]])
    with pytest.raises(ValueError, match="Label,Text"):
        read_csv(path)


def test_convert_to_classifier_freezes_all_but_last_block():
    model = load_base_gpt(quick=True, verbose=False).model
    convert_to_classifier(model)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("trf_blocks.1.", "final_norm.", "out_head.")) for n in trainable)
    assert model.out_head.out_features == 2
    assert count_trainable(model) == sum(p.numel() for n, p in model.named_parameters() if n in trainable)


@pytest.mark.slow  # trains end to end
def test_quick_fine_tuning_beats_chance_and_round_trips(splits, tmp_path):
    """Seeded: 50 steps on the stand-in lowers the test loss and lifts accuracy at least 20 points above 50%."""
    tokenizer = gpt2_encoding()
    torch.manual_seed(123)
    train_loader, val_loader, test_loader = create_spam_loaders(splits, tokenizer, batch_size=8)
    # the first 400 training examples (50 steps) are enough and keep the test short
    small_train = DataLoader(Subset(train_loader.dataset, range(400)), batch_size=8, shuffle=True,
                             generator=torch.Generator().manual_seed(123))
    model = convert_to_classifier(load_base_gpt(quick=True, verbose=False).model)
    loss_before = calc_loss_loader(test_loader, model, "cpu")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.1)
    train_classifier_simple(model, small_train, val_loader, optimizer, "cpu", num_epochs=1, eval_freq=1000,
                            eval_iter=1, verbose=False)
    loss_after = calc_loss_loader(test_loader, model, "cpu")
    accuracy = calc_accuracy_loader(test_loader, model, "cpu")
    assert loss_after < loss_before - 0.1
    assert accuracy >= 0.70

    # saving and loading reproduces the predictions
    path = save_model(model, tmp_path / "classifier.safetensors")
    fresh = convert_to_classifier(load_base_gpt(quick=True, seed=1, verbose=False).model)
    load_model(fresh, path)
    assert calc_accuracy_loader(test_loader, fresh, "cpu") == accuracy
    text = "You are a winner you have been specially selected to receive $1000 cash or a $2000 award."
    max_length = train_loader.dataset.max_length
    assert classify_review(text, fresh, tokenizer, "cpu", max_length) == classify_review(
        text, model, tokenizer, "cpu", max_length)
    assert classify_review(text, model, tokenizer, "cpu", max_length) in ("spam", "not spam")


def test_load_model_rejects_other_architecture(tmp_path):
    model = convert_to_classifier(load_base_gpt(quick=True, verbose=False).model)
    path = save_model(model, tmp_path / "m.safetensors")
    other = load_base_gpt(quick=True, verbose=False).model  # still has the vocabulary head
    with pytest.raises(ValueError, match="convert_to_classifier"):
        load_model(other, path)


def test_notebook_definitions_agree_with_package(splits):
    from pathlib import Path

    from notebook_defs import load_notebook_definitions

    import llms_from_scratch.ch06 as pkg

    nb = load_notebook_definitions(Path(__file__).parents[2] / "ch06/01_main-chapter-code/ch06.ipynb")
    rows = pkg.read_sms_spam()
    assert nb.read_sms_spam(pkg.fetch("sms-spam-collection")) == rows
    import pandas as pd

    df = pd.DataFrame(rows, columns=["Label", "Text"])
    balanced = nb.create_balanced_dataset(df)
    pd.testing.assert_frame_equal(balanced, pkg.create_balanced_dataset(df))
    for nb_part, pkg_part in zip(nb.random_split(balanced, 0.7, 0.1), pkg.random_split(balanced, 0.7, 0.1)):
        pd.testing.assert_frame_equal(nb_part, pkg_part)

    tokenizer = gpt2_encoding()
    nb_data = nb.SpamDataset(splits["validation"], tokenizer, max_length=40)
    pkg_data = pkg.SpamDataset(splits["validation"], tokenizer, max_length=40)
    assert nb_data.encoded_texts == pkg_data.encoded_texts and nb_data.labels == pkg_data.labels

    loader = DataLoader(pkg_data, batch_size=8)
    model = convert_to_classifier(load_base_gpt(quick=True, verbose=False).model)
    assert nb.calc_accuracy_loader(loader, model, "cpu", 3) == pkg.calc_accuracy_loader(loader, model, "cpu", 3)
    assert nb.calc_loss_loader(loader, model, "cpu", 3) == pytest.approx(pkg.calc_loss_loader(loader, model, "cpu", 3))
    for text in ("WIN cash now!!! call 0800", "see you at lunch"):
        assert nb.classify_review(text, model, tokenizer, "cpu", 40) == pkg.classify_review(text, model, tokenizer,
                                                                                            "cpu", 40)
