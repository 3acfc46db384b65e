"""Chapter 6: fine-tuning a GPT model to classify SMS messages as spam or not spam.

The data side reads the UCI SMS Spam Collection row by row (``csv.QUOTE_NONE``: the corpus is tab-separated
and its messages contain stray double quotes that must stay literal), balances the two classes, splits them
70/10/20 and stores each part as a CSV file with the columns ``Label`` (0 = ham, 1 = spam) and ``Text``.
The book's own data functions are here too: :func:`download_and_unzip_spam_data`, and
:func:`create_balanced_dataset` and :func:`random_split`, which take and return pandas DataFrames (pandas is
optional; :func:`balance_rows` and :func:`split_rows` do the same on ``(label, text)`` pairs).
The model side turns a GPT into a classifier by swapping its vocabulary-sized output head for a two-class
head and reading the prediction from the last token, the only position that has attended to the whole message.
"""

from __future__ import annotations

import csv
import dataclasses
import random
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from . import ch05
from .data import fetch, fetch_asset, get_asset
from .files import atomic_path

if TYPE_CHECKING:
    import pandas as pd

LABELS = {"ham": 0, "spam": 1}
CLASS_NAMES = ("not spam", "spam")  # index = label id, as classify_review reports it
PAD_TOKEN_ID = 50256  # GPT-2's <|endoftext|> doubles as the padding token


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------

def download_and_unzip_spam_data(url: str, zip_path: str | Path, extracted_path: str | Path,
                                 data_file_path: str | Path) -> None:
    """The book's download step: put the SMS Spam Collection at ``data_file_path`` unless a file is already there.

    The file comes through the data layer (cache, ``$LLMS_DATA_MIRROR``, then ``url`` and the known addresses of the
    UCI zip), is checked against its SHA-256 and is copied to ``data_file_path``, normally
    ``extracted_path / "SMSSpamCollection.tsv"``. The zip is unpacked in memory, so nothing is written at
    ``zip_path``; the argument is kept for the book's signature. Prints what it did, as the book's function does.
    """
    data_file_path = Path(data_file_path)
    if data_file_path.exists():
        print(f"{data_file_path} already exists. Skipping download and extraction.")
        return
    asset = get_asset("sms-spam-collection")
    if url not in asset.urls:  # a reader's own copy of the zip: try it first, then the known addresses
        asset = dataclasses.replace(asset, urls=(url, *asset.urls))
    source = fetch_asset(asset)
    Path(extracted_path).mkdir(parents=True, exist_ok=True)
    # copy under a temporary name, then rename: an interrupted copy must not look like a finished file
    with atomic_path(data_file_path) as tmp:
        shutil.copyfile(source, tmp)
    print(f"File downloaded and saved as {data_file_path}")


def read_sms_spam(path: str | Path | None = None) -> list[tuple[str, str]]:
    """Return the corpus as ``(label, text)`` pairs, one per line, labels ``"ham"``/``"spam"``.

    With no ``path`` the file comes from the data layer (cache, ``$LLMS_DATA_MIRROR`` or the UCI zip).
    Quoting is switched off: a message such as ``"Hello" he said`` would otherwise swallow the tab and the
    lines after it, which is what pandas' default reader does (it finds 4,825 ham messages instead of 4,827).
    """
    path = Path(path) if path is not None else fetch("sms-spam-collection")
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if len(row) != 2 or row[0] not in LABELS:
                raise ValueError(
                    f"{path}, line {line_no}: expected 'ham' or 'spam', a tab and the message, got {row!r}; "
                    f"is this the UCI SMSSpamCollection file?"
                )
            rows.append((row[0], row[1]))
    return rows


def balance_rows(rows: Sequence[tuple[str, str]], seed: int = 123) -> list[tuple[int, str]]:
    """Keep every spam message and an equally large random sample of ham; return ``(label_id, text)`` pairs.

    The rows version of :func:`create_balanced_dataset`, used by :func:`prepare_spam_splits`. The result lists the
    sampled ham first, then the spam, each in corpus order; :func:`split_rows` shuffles.
    """
    ham = [text for label, text in rows if label == "ham"]
    spam = [text for label, text in rows if label == "spam"]
    if len(spam) > len(ham):
        raise ValueError(f"cannot undersample ham: {len(ham)} ham messages but {len(spam)} spam")
    chosen = sorted(random.Random(seed).sample(range(len(ham)), len(spam)))
    return [(LABELS["ham"], ham[i]) for i in chosen] + [(LABELS["spam"], text) for text in spam]


def split_rows(
    rows: Sequence[tuple[int, str]], train_frac: float, validation_frac: float, seed: int = 123
) -> tuple[list[tuple[int, str]], list[tuple[int, str]], list[tuple[int, str]]]:
    """Shuffle ``rows`` and cut them into train, validation and test parts (the test part takes the rest)."""
    _check_fractions(train_frac, validation_frac)
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    train_end = int(len(shuffled) * train_frac)
    validation_end = train_end + int(len(shuffled) * validation_frac)
    return shuffled[:train_end], shuffled[train_end:validation_end], shuffled[validation_end:]


def _check_fractions(train_frac: float, validation_frac: float) -> None:
    if not (0 < train_frac and 0 <= validation_frac and train_frac + validation_frac <= 1):
        raise ValueError(f"need 0 < train_frac, 0 <= validation_frac, sum <= 1; got {train_frac}, {validation_frac}")


def _pandas_frame(df, function: str):
    """Import pandas (an optional dependency) and check that ``df`` is a DataFrame with a ``Label`` column."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(f"{function} works on pandas DataFrames, and pandas is not installed; "
                          f"run `pip install pandas` (or use the rows functions balance_rows/split_rows)") from None
    if not isinstance(df, pd.DataFrame) or "Label" not in df.columns:
        raise TypeError(f"{function} takes a pandas DataFrame with a 'Label' column, got {type(df).__name__}; "
                        f"for a list of (label, text) pairs use balance_rows/split_rows")
    return pd


def create_balanced_dataset(df: pd.DataFrame, *, seed: int = 123) -> pd.DataFrame:
    """The book's balancing step on a DataFrame: all ``"spam"`` rows plus as many ``"ham"`` rows sampled at random.

    The sampled ham rows come first, then the spam rows; both keep their original index. ``seed`` is the
    ``random_state`` of the sampling (the book's value by default), so the same DataFrame gives the same rows.
    """
    pd = _pandas_frame(df, "create_balanced_dataset")
    is_spam = df["Label"] == "spam"
    num_spam = int(is_spam.sum())
    ham = df[df["Label"] == "ham"]
    if num_spam > len(ham):
        raise ValueError(f"cannot undersample ham: {len(ham)} ham rows but {num_spam} spam")
    return pd.concat([ham.sample(num_spam, random_state=seed), df[is_spam]])


def random_split(
    df: pd.DataFrame, train_frac: float, validation_frac: float, *, seed: int = 123
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Shuffle the DataFrame's rows (seeded) and cut them into train, validation and test DataFrames.

    The shuffled frame gets a fresh 0..n-1 index before it is cut; the test part takes what the first two leave.
    """
    _pandas_frame(df, "random_split")
    _check_fractions(train_frac, validation_frac)
    shuffled = df.sample(frac=1, random_state=seed).reset_index(drop=True)
    train_end = int(len(shuffled) * train_frac)
    validation_end = train_end + int(len(shuffled) * validation_frac)
    return shuffled.iloc[:train_end], shuffled.iloc[train_end:validation_end], shuffled.iloc[validation_end:]


def write_csv(rows: Iterable[tuple[int, str]], path: str | Path) -> Path:
    """Write ``(label_id, text)`` pairs as a CSV with the header ``Label,Text``; the file appears atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Label", "Text"])
        writer.writerows(rows)
    return path


def read_csv(path: str | Path) -> list[tuple[int, str]]:
    """Read a file written by :func:`write_csv` back into ``(label_id, text)`` pairs."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != ["Label", "Text"]:
            raise ValueError(f"{path}: expected the header 'Label,Text', got {reader.fieldnames}")
        return [(int(row["Label"]), row["Text"]) for row in reader]


def prepare_spam_splits(out_dir: str | Path, seed: int = 123) -> dict[str, Path]:
    """Fetch, balance and split the corpus 70/10/20 and write ``train.csv``, ``validation.csv``, ``test.csv``."""
    balanced = balance_rows(read_sms_spam(), seed=seed)
    parts = split_rows(balanced, 0.7, 0.1, seed=seed)
    out_dir = Path(out_dir)
    return {name: write_csv(part, out_dir / f"{name}.csv") for name, part in zip(("train", "validation", "test"), parts)}


class SpamDataset(Dataset):
    """Token ids of each message, cut to ``max_length`` tokens and padded to the same length, with its label.

    With ``max_length=None`` the length is that of the longest message in this file; pass the training set's
    ``max_length`` to the validation and test sets so that all three see inputs of the same size.
    """

    def __init__(self, csv_file: str | Path, tokenizer, max_length: int | None = None, pad_token_id: int = PAD_TOKEN_ID):
        rows = read_csv(csv_file)
        self.labels = [label for label, _ in rows]
        self.encoded_texts = [tokenizer.encode(text) for _, text in rows]
        if max_length is None:
            max_length = self._longest_encoded_length()
        elif max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        self.max_length = max_length
        # truncate first, then pad everything to exactly max_length
        self.encoded_texts = [ids[:max_length] for ids in self.encoded_texts]
        self.encoded_texts = [ids + [pad_token_id] * (max_length - len(ids)) for ids in self.encoded_texts]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.tensor(self.encoded_texts[index], dtype=torch.long),
                torch.tensor(self.labels[index], dtype=torch.long))

    def __len__(self) -> int:
        return len(self.labels)

    def _longest_encoded_length(self) -> int:
        return max((len(ids) for ids in self.encoded_texts), default=1)


def create_spam_loaders(
    paths: dict[str, Path], tokenizer, batch_size: int = 8, num_workers: int = 0, seed: int = 123
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Data loaders for the three splits; the training set fixes ``max_length`` and is shuffled (seeded)."""
    train_dataset = SpamDataset(paths["train"], tokenizer)
    val_dataset = SpamDataset(paths["validation"], tokenizer, max_length=train_dataset.max_length)
    test_dataset = SpamDataset(paths["test"], tokenizer, max_length=train_dataset.max_length)
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                              drop_last=True, generator=generator)
    val_loader = DataLoader(val_dataset, batch_size=batch_size, num_workers=num_workers)
    test_loader = DataLoader(test_dataset, batch_size=batch_size, num_workers=num_workers)
    return train_loader, val_loader, test_loader


# ---------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------

def convert_to_classifier(model: nn.Module, num_classes: int = 2, trainable: str = "last_block") -> nn.Module:
    """Replace ``model.out_head`` by a ``num_classes`` head and choose which parameters keep training.

    ``trainable``: ``"last_block"`` (the book's choice: last transformer block, final norm, new head),
    ``"last_two_blocks"``, ``"all"``, or ``"head"`` (final norm and head only). Returns the same model.
    """
    choices = {"head": 0, "last_block": 1, "last_two_blocks": 2, "all": None}
    if trainable not in choices:
        raise ValueError(f"trainable must be one of {sorted(choices)}, got {trainable!r}")
    n_blocks = choices[trainable]
    for param in model.parameters():
        param.requires_grad = n_blocks is None
    emb_dim = model.out_head.in_features
    model.out_head = nn.Linear(emb_dim, num_classes)  # new layers train by default
    if n_blocks:
        for block in model.trf_blocks[-n_blocks:]:
            for param in block.parameters():
                param.requires_grad = True
    for param in model.final_norm.parameters():
        param.requires_grad = True
    return model


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def calc_accuracy_loader(data_loader: DataLoader, model: nn.Module, device, num_batches: int | None = None) -> float:
    """Share of correctly classified examples over the first ``num_batches`` batches (all when ``None``)."""
    model.eval()
    correct, total = 0, 0
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= num_batches:
            break
        input_batch, target_batch = input_batch.to(device), target_batch.to(device)
        with torch.no_grad():
            logits = model(input_batch)[:, -1, :]  # the last token has seen the whole message
        predicted = torch.argmax(logits, dim=-1)
        total += predicted.shape[0]
        correct += (predicted == target_batch).sum().item()
    if total == 0:
        raise ValueError("the data loader yielded no examples; is the data set smaller than the batch size?")
    return correct / total


def calc_loss_batch(input_batch: torch.Tensor, target_batch: torch.Tensor, model: nn.Module, device) -> torch.Tensor:
    """Cross-entropy of the last token's class logits against the labels."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = model(input_batch)[:, -1, :]  # (batch, num_classes)
    return nn.functional.cross_entropy(logits, target_batch)


def calc_loss_loader(data_loader: DataLoader, model: nn.Module, device, num_batches: int | None = None) -> float:
    """Mean of :func:`calc_loss_batch` over the first ``num_batches`` batches (all when ``None``).

    The loop is chapter 5's; only the per-batch loss (last token's class logits) differs.
    """
    return ch05.calc_loss_loader(data_loader, model, device, num_batches, loss_fn=calc_loss_batch)


def evaluate_model(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, device, eval_iter: int):
    """Training and validation loss over ``eval_iter`` batches each, with dropout off."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def train_classifier_simple(
    model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, optimizer: torch.optim.Optimizer, device,
    num_epochs: int, eval_freq: int, eval_iter: int, verbose: bool = True,
) -> tuple[list[float], list[float], list[float], list[float], int]:
    """Fine-tune for ``num_epochs``; return train/val losses, train/val accuracies and the examples seen.

    Losses are recorded every ``eval_freq`` steps, accuracies once per epoch (over ``eval_iter`` batches).
    """
    train_losses, val_losses, train_accs, val_accs = [], [], [], []
    examples_seen, global_step = 0, -1
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            examples_seen += input_batch.shape[0]  # examples, not tokens: each one yields one prediction
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                if verbose:
                    print(f"Ep {epoch + 1} (Step {global_step:06d}): "
                          f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        train_accuracy = calc_accuracy_loader(train_loader, model, device, num_batches=eval_iter)
        val_accuracy = calc_accuracy_loader(val_loader, model, device, num_batches=eval_iter)
        if verbose:
            print(f"Training accuracy: {train_accuracy * 100:.2f}% | Validation accuracy: {val_accuracy * 100:.2f}%")
        train_accs.append(train_accuracy)
        val_accs.append(val_accuracy)
    return train_losses, val_losses, train_accs, val_accs, examples_seen


def plot_values(epochs_seen, examples_seen, train_values, val_values, label: str = "loss", path=None):
    """Plot training and validation curves against epochs, with examples seen on a second x axis."""
    import matplotlib.pyplot as plt

    fig, ax1 = plt.subplots(figsize=(5, 3))
    ax1.plot(epochs_seen, train_values, label=f"Training {label}")
    ax1.plot(epochs_seen, val_values, linestyle="-.", label=f"Validation {label}")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel(label.capitalize())
    ax1.legend()
    ax2 = ax1.twiny()  # same curves, second x axis in examples
    ax2.plot(examples_seen, train_values, alpha=0)
    ax2.set_xlabel("Examples seen")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


def classify_review(
    text: str, model: nn.Module, tokenizer, device, max_length: int | None = None, pad_token_id: int = PAD_TOKEN_ID
) -> str:
    """Classify one message: returns ``"spam"`` or ``"not spam"``.

    The input is cut to ``max_length`` (the training length) and to the model's context, then padded like the
    training data, so the last position is where the classifier was trained to read.
    """
    model.eval()
    input_ids = tokenizer.encode(text)
    supported = model.pos_emb.weight.shape[0]
    max_length = supported if max_length is None else min(max_length, supported)
    input_ids = input_ids[:max_length]
    input_ids += [pad_token_id] * (max_length - len(input_ids))
    input_tensor = torch.tensor(input_ids, device=device).unsqueeze(0)  # add the batch dimension: (1, max_length)
    with torch.no_grad():
        logits = model(input_tensor)[:, -1, :]
    return CLASS_NAMES[torch.argmax(logits, dim=-1).item()]


def save_model(model: nn.Module, path: str | Path) -> Path:
    """Store the model's weights as safetensors; the file appears atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    return path


def load_model(model: nn.Module, path: str | Path, device="cpu") -> nn.Module:
    """Load weights saved by :func:`save_model` into ``model`` (same architecture and head); returns it."""
    from safetensors.torch import load_file

    state = load_file(str(path), device=str(device))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in set(state) & set(expected) if state[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        raise ValueError(
            f"{path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape "
            f"{sorted(wrong_shape)[:5]}; build the model with the same configuration (and call "
            f"convert_to_classifier) before loading"
        )
    model.load_state_dict(state)
    return model.to(device)


# ---------------------------------------------------------------------------------------------------------------
# The whole recipe in one call (used by the CLI and the layer-choice script)
# ---------------------------------------------------------------------------------------------------------------

def finetune_spam_classifier(
    out_dir: str | Path, model_size: str = "124M", trainable: str = "last_block", num_epochs: int = 5,
    lr: float | None = None, batch_size: int = 8, lora_rank: int = 16, lora_alpha: float = 16,
    train_examples: int | None = None, seed: int = 123, quick: bool | None = None, verbose: bool = True,
    device: str | torch.device | None = None,
) -> dict:
    """Prepare the split in ``out_dir``, fine-tune, save, and return the accuracies and settings as a dict.

    ``trainable`` takes :func:`convert_to_classifier`'s choices or ``"lora"`` (appendix E: the model frozen, every
    linear layer wrapped with rank ``lora_rank``). ``lr=None`` picks 5e-5 for real GPT-2 weights and 1e-3 for the
    random stand-in. ``train_examples`` limits the training set (for quick runs). ``device=None`` picks CUDA, MPS
    or the CPU.
    """
    import time

    from torch.utils.data import Subset

    from .appendix_e import replace_linear_with_lora, save_lora_adapters
    from .data import gpt2_encoding
    from .device import pick_device
    from .training.base_model import load_base_gpt

    device = pick_device(verbose=verbose)[0] if device is None else torch.device(device)
    out_dir = Path(out_dir)
    tokenizer = gpt2_encoding()
    paths = prepare_spam_splits(out_dir / "data", seed=seed)
    torch.manual_seed(seed)
    train_loader, val_loader, test_loader = create_spam_loaders(paths, tokenizer, batch_size=batch_size, seed=seed)
    if train_examples is not None:
        subset = Subset(train_loader.dataset, range(min(train_examples, len(train_loader.dataset))))
        train_loader = DataLoader(subset, batch_size=batch_size, shuffle=True, drop_last=True,
                                  generator=torch.Generator().manual_seed(seed))
    base = load_base_gpt(model_size, quick=quick, seed=seed, verbose=verbose)
    model = base.model
    if trainable == "lora":
        convert_to_classifier(model, trainable="all")
        model.requires_grad_(False)
        torch.manual_seed(seed)
        replace_linear_with_lora(model, rank=lora_rank, alpha=lora_alpha)
    else:
        convert_to_classifier(model, trainable=trainable)
    model.to(device)
    if lr is None:
        lr = 5e-5 if base.pretrained else 1e-3
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.1)
    start = time.perf_counter()
    train_classifier_simple(model, train_loader, val_loader, optimizer, device, num_epochs=num_epochs, eval_freq=50,
                            eval_iter=5, verbose=verbose)
    seconds = time.perf_counter() - start
    results = {
        "model": f"GPT-2 {model_size}" if base.pretrained else "random stand-in (see note)",
        "note": base.note,
        "trainable": trainable,
        "trainable_parameters": count_trainable(model),
        "epochs": num_epochs,
        "lr": lr,
        "train_examples": len(train_loader.dataset),
        "train_accuracy": calc_accuracy_loader(train_loader, model, device),
        "val_accuracy": calc_accuracy_loader(val_loader, model, device),
        "test_accuracy": calc_accuracy_loader(test_loader, model, device),
        "train_seconds": seconds,
    }
    if trainable == "lora":
        results["saved"] = str(save_lora_adapters(model, out_dir / "classifier-lora-adapters.safetensors"))
    else:
        results["saved"] = str(save_model(model, out_dir / "classifier.safetensors"))
    return results
