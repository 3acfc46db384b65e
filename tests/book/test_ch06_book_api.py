"""Chapter 6 as the book calls it: pandas DataFrames in and out, and the book's download function via the mirror."""

from __future__ import annotations

import inspect
import sys

import pytest
import torch

from llms_from_scratch import ch06
from llms_from_scratch.data import fetch, gpt2_encoding, sha256_of

pd = pytest.importorskip("pandas")  # the book's data functions need it; it ships with the notebooks extra

BOOK_URL = "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"


@pytest.fixture(scope="module")
def book_df():
    """The corpus read the book's way: pandas' default quoting merges two messages, leaving 4,825 ham."""
    return pd.read_csv(fetch("sms-spam-collection"), sep="\t", header=None, names=["Label", "Text"])


def test_signatures_follow_the_book():
    assert list(inspect.signature(ch06.create_balanced_dataset).parameters) == ["df", "seed"]
    assert list(inspect.signature(ch06.random_split).parameters) == ["df", "train_frac", "validation_frac", "seed"]
    for fn in (ch06.create_balanced_dataset, ch06.random_split):  # the extra is keyword only, with the book's value
        seed = inspect.signature(fn).parameters["seed"]
        assert seed.kind is inspect.Parameter.KEYWORD_ONLY and seed.default == 123
    assert list(inspect.signature(ch06.download_and_unzip_spam_data).parameters) == [
        "url", "zip_path", "extracted_path", "data_file_path"]


def test_balanced_dataset_has_the_books_class_counts(book_df):
    assert book_df["Label"].value_counts().to_dict() == {"ham": 4825, "spam": 747}
    balanced = ch06.create_balanced_dataset(book_df)
    assert isinstance(balanced, pd.DataFrame) and list(balanced.columns) == ["Label", "Text"]
    assert balanced["Label"].value_counts().to_dict() == {"ham": 747, "spam": 747}
    # sampled ham first, then every spam row in corpus order; rows keep their original index
    assert (balanced["Label"].iloc[:747] == "ham").all() and (balanced["Label"].iloc[747:] == "spam").all()
    assert balanced.index[747:].tolist() == book_df.index[book_df["Label"] == "spam"].tolist()
    assert balanced.loc[balanced.index[:747], "Text"].equals(book_df.loc[balanced.index[:747], "Text"])
    # the book's sample: random_state=123 on the ham rows, so a reader's rows match the book's
    expected_ham = book_df[book_df["Label"] == "ham"].sample(747, random_state=123)
    assert balanced.iloc[:747].equals(expected_ham)
    assert ch06.create_balanced_dataset(book_df).equals(balanced)  # same every call
    other = ch06.create_balanced_dataset(book_df, seed=7)
    assert not other.index[:747].equals(balanced.index[:747])


def test_random_split_has_the_books_sizes(book_df):
    balanced = ch06.create_balanced_dataset(book_df)
    balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
    train_df, validation_df, test_df = ch06.random_split(balanced, 0.7, 0.1)
    assert [len(train_df), len(validation_df), len(test_df)] == [1045, 149, 300]
    # a fresh 0..n-1 index, cut in order; together the parts are the balanced set, each row once
    joined = pd.concat([train_df, validation_df, test_df])
    assert joined.index.tolist() == list(range(1494))
    assert sorted(map(tuple, joined.values.tolist())) == sorted(map(tuple, balanced.values.tolist()))
    assert joined.equals(balanced.sample(frac=1, random_state=123).reset_index(drop=True))
    again = ch06.random_split(balanced, 0.7, 0.1)
    assert all(a.equals(b) for a, b in zip(again, (train_df, validation_df, test_df)))
    assert not ch06.random_split(balanced, 0.7, 0.1, seed=1)[0].equals(train_df)
    with pytest.raises(ValueError, match="train_frac"):
        ch06.random_split(balanced, 0.8, 0.3)


def test_book_csv_files_feed_spam_dataset(book_df, tmp_path):
    balanced = ch06.create_balanced_dataset(book_df)
    balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
    train_df, validation_df, _ = ch06.random_split(balanced, 0.7, 0.1)
    train_df.to_csv(tmp_path / "train.csv", index=None)  # as the book writes them
    validation_df.to_csv(tmp_path / "validation.csv", index=None)
    tokenizer = gpt2_encoding()
    train = ch06.SpamDataset(csv_file=tmp_path / "train.csv", max_length=None, tokenizer=tokenizer)
    val = ch06.SpamDataset(csv_file=tmp_path / "validation.csv", max_length=train.max_length, tokenizer=tokenizer)
    assert (len(train), len(val)) == (1045, 149)
    assert train.labels == train_df["Label"].tolist()
    first_ids = tokenizer.encode(train_df["Text"].iloc[0])
    assert train[0][0].tolist()[: len(first_ids)] == first_ids and train[0][0].dtype == torch.long


def test_dataframe_functions_reject_rows_and_name_the_rows_functions(book_df):
    rows = [("ham", "hi"), ("spam", "win")]
    with pytest.raises(TypeError, match="balance_rows"):
        ch06.create_balanced_dataset(rows)
    with pytest.raises(TypeError, match="split_rows"):
        ch06.random_split(rows, 0.7, 0.1)
    assert ch06.balance_rows(rows) == [(0, "hi"), (1, "win")]


def test_missing_pandas_gives_an_install_hint(book_df, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=r"pip install pandas"):
        ch06.create_balanced_dataset(book_df)
    with pytest.raises(ImportError, match=r"pip install pandas"):
        ch06.random_split(book_df, 0.7, 0.1)


@pytest.mark.parametrize("url", [BOOK_URL, "https://example.invalid/my-copy-of-the.zip"])
def test_download_and_unzip_spam_data_puts_the_file_where_the_book_reads_it(tmp_path, capsys, url):
    """Through the data layer (cache or mirror): the book's path gets the checked file; a second call skips."""
    zip_path = tmp_path / "sms_spam_collection.zip"
    extracted_path = tmp_path / "sms_spam_collection"
    data_file_path = extracted_path / "SMSSpamCollection.tsv"
    assert ch06.download_and_unzip_spam_data(url, zip_path, extracted_path, data_file_path) is None
    assert data_file_path.is_file() and sha256_of(data_file_path) == sha256_of(fetch("sms-spam-collection"))
    assert not zip_path.exists()  # unpacked in memory by the data layer
    assert sorted(p.name for p in extracted_path.iterdir()) == ["SMSSpamCollection.tsv"]  # no temporary left
    assert f"File downloaded and saved as {data_file_path}" in capsys.readouterr().out

    data_file_path.write_text("ham\tkept\n", encoding="utf-8")  # an existing file is left alone
    ch06.download_and_unzip_spam_data(url, zip_path, extracted_path, str(data_file_path))
    assert "already exists. Skipping download and extraction." in capsys.readouterr().out
    assert data_file_path.read_text(encoding="utf-8") == "ham\tkept\n"
    df = pd.read_csv(data_file_path, sep="\t", header=None, names=["Label", "Text"])
    assert df["Text"].tolist() == ["kept"]
