"""Chapter 5: pretraining the GPT on unlabeled text, decoding strategies, and OpenAI's GPT-2 weights.

The training helpers are the book's: the loss of one batch and of a loader, a simple training loop that
evaluates every few steps and prints a sample after each epoch, and a plot of the losses against epochs and
tokens seen. :func:`generate` adds temperature, top-k and (beyond the book) top-p sampling to chapter 4's
greedy loop. Loading OpenAI's weights lives in :mod:`llms_from_scratch.gpt2_weights` (``download_and_load_gpt2``,
``load_weights_into_gpt``, ``load_gpt2_params_from_tf_ckpt``); saving and resuming training in
:mod:`llms_from_scratch.training.checkpoints`. Both are re-exported here under the book's names, beside the book's
``assign`` and ``download_file``.
"""

from __future__ import annotations

import http.client
import math
import os
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import AssetUnavailableError, list_assets, mirror_dir
from .gpt2_weights import (
    GPT2_BASE_CONFIG,
    GPT2_MODEL_CONFIGS,
    CheckpointMismatchError,
    download_and_load_gpt2,
    gpt2_config,
    load_gpt2_params,
    load_gpt2_params_from_tf_ckpt,
    load_weights_into_gpt,
)
from .training.checkpoints import load_checkpoint, load_model_state_dict, save_checkpoint, unwrap_model

__all__ = [
    "GPT2_BASE_CONFIG",
    "GPT2_MODEL_CONFIGS",
    "CheckpointMismatchError",
    "assign",
    "calc_loss_batch",
    "calc_loss_loader",
    "download_and_load_gpt2",
    "download_file",
    "epoch_end_losses",
    "evaluate_model",
    "generate",
    "generate_and_print_sample",
    "gpt2_config",
    "load_checkpoint",
    "load_gpt2_params",
    "load_gpt2_params_from_tf_ckpt",
    "load_model_state_dict",
    "load_weights_into_gpt",
    "perplexity",
    "plot_losses",
    "save_checkpoint",
    "text_to_token_ids",
    "token_ids_to_text",
    "train_model_simple",
    "unwrap_model",
]


# ---------------------------------------------------------------------------------------------------------------
# Text <-> token ids
# ---------------------------------------------------------------------------------------------------------------

def text_to_token_ids(text: str, tokenizer) -> torch.Tensor:
    """Encode ``text`` into a (1, num_tokens) tensor; ``<|endoftext|>`` is allowed as a special token."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    return torch.tensor(encoded).unsqueeze(0)  # add the batch dimension


def token_ids_to_text(token_ids: torch.Tensor, tokenizer) -> str:
    """Decode a (1, num_tokens) or (num_tokens,) tensor of token ids back into text."""
    flat = token_ids.squeeze(0)  # remove the batch dimension
    return tokenizer.decode(flat.tolist())


# ---------------------------------------------------------------------------------------------------------------
# Losses and the training loop
# ---------------------------------------------------------------------------------------------------------------

def calc_loss_batch(input_batch: torch.Tensor, target_batch: torch.Tensor, model: nn.Module,
                    device: torch.device | str) -> torch.Tensor:
    """Mean cross-entropy of the next-token predictions over every position of the batch."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = model(input_batch)  # (batch, num_tokens, vocab_size)
    # cross_entropy wants (N, classes) and (N,): flatten batch and positions together
    return nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())


def calc_loss_loader(data_loader: Iterable, model: nn.Module, device: torch.device | str,
                     num_batches: int | None = None, loss_fn=None) -> float:
    """Average :func:`calc_loss_batch` over the first ``num_batches`` batches (all of them by default).

    ``loss_fn(input_batch, target_batch, model, device)`` replaces the per-batch loss; chapter 6 passes its
    classification loss, so both chapters share this loop.

    An empty loader gives ``nan``, as the book's version does, so a too-small validation split shows up as
    ``nan`` in the printed losses rather than as a crash.
    """
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    loss_fn = calc_loss_batch if loss_fn is None else loss_fn
    total_loss = 0.0
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= num_batches:
            break
        total_loss += loss_fn(input_batch, target_batch, model, device).item()
    return total_loss / num_batches


def evaluate_model(model: nn.Module, train_loader: Iterable, val_loader: Iterable, device: torch.device | str,
                   eval_iter: int) -> tuple[float, float]:
    """Training and validation loss over ``eval_iter`` batches each, in eval mode (no dropout, no gradients)."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def generate_and_print_sample(model: nn.Module, tokenizer, device: torch.device | str, start_context: str) -> None:
    """Print a 50-token greedy continuation of ``start_context`` on one line (a quick look during training)."""
    model.eval()
    context_size = model.pos_emb.weight.shape[0]
    encoded = text_to_token_ids(start_context, tokenizer).to(device)
    with torch.no_grad():
        token_ids = generate(model, encoded, max_new_tokens=50, context_size=context_size)
    decoded_text = token_ids_to_text(token_ids, tokenizer)
    print(decoded_text.replace("\n", " "))  # one line keeps the training log compact
    model.train()


def train_model_simple(model: nn.Module, train_loader: Iterable, val_loader: Iterable,
                       optimizer: torch.optim.Optimizer, device: torch.device | str, num_epochs: int,
                       eval_freq: int, eval_iter: int, start_context: str,
                       tokenizer) -> tuple[list[float], list[float], list[int]]:
    """The book's training loop: one optimizer step per batch, an evaluation every ``eval_freq`` steps.

    Returns the training losses, validation losses and tokens seen at each evaluation.
    """
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1

    for epoch in range(num_epochs):
        model.train()  # dropout on
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()  # gradients from the previous step would otherwise add up
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            tokens_seen += input_batch.numel()
            global_step += 1

            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")

        generate_and_print_sample(model, tokenizer, device, start_context)

    return train_losses, val_losses, track_tokens_seen


def epoch_end_losses(train_losses: list[float], val_losses: list[float], track_tokens_seen: list[int],
                     tokens_per_epoch: int) -> list[dict]:
    """Summarise :func:`train_model_simple`'s evaluations per epoch: the last evaluation within each epoch.

    ``tokens_per_epoch`` is ``len(train_loader) * batch_size * context_length``. Returns one
    ``{"epoch", "train_loss", "val_loss"}`` dict per epoch that had an evaluation.
    """
    if tokens_per_epoch < 1:
        raise ValueError(f"tokens_per_epoch must be >= 1, got {tokens_per_epoch}")
    last: dict[int, dict] = {}
    for train_loss, val_loss, tokens in zip(train_losses, val_losses, track_tokens_seen):
        epoch = -(-tokens // tokens_per_epoch)  # ceiling division: the epoch whose steps produced these tokens
        last[epoch] = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
    return [last[e] for e in sorted(last)]


def plot_losses(epochs_seen, tokens_seen, train_losses, val_losses, save_path: str | Path | None = None):
    """Plot training and validation loss against epochs, with a second x-axis for tokens seen.

    Saves the figure as ``save_path`` when given (the notebooks store ``loss-plot.png``) and returns it.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax1 = plt.subplots(figsize=(5, 3))
    ax1.plot(epochs_seen, train_losses, label="Training loss")
    ax1.plot(epochs_seen, val_losses, linestyle="-.", label="Validation loss")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel("Loss")
    ax1.legend(loc="upper right")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only

    ax2 = ax1.twiny()  # shares the y-axis; its own x-axis runs over tokens seen
    ax2.plot(tokens_seen, train_losses, alpha=0)  # invisible: only aligns the tick positions
    ax2.set_xlabel("Tokens seen")

    fig.tight_layout()
    if save_path is not None:
        fig.savefig(save_path, dpi=120)
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Decoding: greedy, temperature, top-k, top-p
# ---------------------------------------------------------------------------------------------------------------

def _check_sampling_args(max_new_tokens: int, context_size: int, temperature: float, top_k: int | None,
                         top_p: float | None) -> None:
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if context_size < 1:
        raise ValueError(f"context_size must be >= 1, got {context_size}")
    if not temperature >= 0.0:  # also rejects nan
        raise ValueError(f"temperature must be >= 0 (0 means greedy decoding), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (or None to keep every token), got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (or None to keep every token), got {top_p}")


def _filter_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Set every logit below the k-th largest of its row to -inf; ties with the k-th all stay."""
    top_k = min(top_k, logits.shape[-1])
    top_logits, _ = torch.topk(logits, top_k, dim=-1)
    min_val = top_logits[:, -1:]  # (batch, 1): the k-th largest per row
    return torch.where(logits < min_val, torch.full_like(logits, -torch.inf), logits)


def _filter_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities add up to at least ``top_p``."""
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)
    cum_probs = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    # drop a token when the tokens ranked before it already reach top_p; the top token is never dropped
    drop_sorted = (cum_probs - torch.softmax(sorted_logits, dim=-1)) >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, sorted_idx, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, -torch.inf)


def generate(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int,
             temperature: float = 0.0, top_k: int | None = None, eos_id: int | None = None,
             top_p: float | None = None) -> torch.Tensor:
    """Append up to ``max_new_tokens`` tokens to ``idx`` (batch, num_tokens) and return the longer tensor.

    - ``temperature=0`` picks the most likely token (greedy); ``temperature>0`` samples from
      ``softmax(logits / temperature)``, flatter above 1 and sharper below 1.
    - ``top_k`` keeps only the k most likely tokens; ``top_p`` (nucleus sampling) keeps the most likely tokens
      until their probabilities add up to ``top_p``. Both only matter when sampling (``temperature>0``).
    - ``eos_id``: generation stops once every sequence of the batch has produced this token. A single sequence
      stops before appending it (as in the book); in a batch, sequences that finished early are padded with it.
    - The model only ever sees the last ``context_size`` tokens, so a prompt longer than that is cropped to its
      last ``context_size`` tokens (the returned tensor still starts with the full prompt).

    Seed with ``torch.manual_seed`` for reproducible samples. Call ``model.eval()`` first for deterministic logits.
    """
    _check_sampling_args(max_new_tokens, context_size, temperature, top_k, top_p)
    pos_emb = getattr(model, "pos_emb", None)
    if isinstance(pos_emb, nn.Embedding) and context_size > pos_emb.num_embeddings:
        raise ValueError(
            f"context_size={context_size} exceeds the model's context length {pos_emb.num_embeddings}; "
            f"pass context_size={pos_emb.num_embeddings} or less"
        )

    finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]  # crop to the supported context
        with torch.no_grad():
            logits = model(idx_cond)
        logits = logits[:, -1, :].float()  # last position only: (batch, vocab_size)

        if temperature > 0.0:
            if top_k is not None:
                logits = _filter_top_k(logits, top_k)
            logits = logits / temperature
            if top_p is not None and top_p < 1.0:
                logits = _filter_top_p(logits, top_p)
            probs = torch.softmax(logits, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1)  # (batch, 1)
        else:
            idx_next = torch.argmax(logits, dim=-1, keepdim=True)  # (batch, 1)

        if eos_id is not None:
            idx_next = idx_next.masked_fill(finished.unsqueeze(1), eos_id)  # finished rows stay finished
            finished = finished | (idx_next.squeeze(1) == eos_id)
            if bool(finished.all()):
                break
        idx = torch.cat((idx, idx_next), dim=1)  # (batch, num_tokens + 1)
    return idx


def perplexity(loss: float) -> float:
    """``exp(loss)``: the effective number of tokens the model hesitates between at each position."""
    return math.exp(loss)


# ---------------------------------------------------------------------------------------------------------------
# The book's helpers for OpenAI's weights: assign, download_file
# ---------------------------------------------------------------------------------------------------------------

def assign(left: torch.Tensor, right: Any) -> nn.Parameter:
    """A new parameter holding ``right`` (a numpy array or tensor) in place of ``left``, after checking shapes.

    The copy takes ``left``'s dtype and device, so a model built in bfloat16 or on a GPU stays that way.
    """
    right = torch.as_tensor(right)
    if tuple(left.shape) != tuple(right.shape):
        raise ValueError(f"Shape mismatch. Left: {tuple(left.shape)}, Right: {tuple(right.shape)}; "
                         "the model's configuration does not match the weights (check emb_dim, n_layers, qkv_bias)")
    return nn.Parameter(right.to(dtype=left.dtype, device=left.device, copy=True))


def _known_size(urls: list[str]) -> int | None:
    """The size of the file behind ``urls`` where it is known without downloading it.

    In order: the registered asset a URL belongs to, a same-named file in ``$LLMS_DATA_MIRROR``, the server's
    ``Content-Length`` (a HEAD request). ``None`` when none of them answers (offline, no mirror).
    """
    mirror = mirror_dir()
    for url in urls:
        for asset in list_assets():
            if url in asset.urls and asset.archive_member is None and asset.size is not None:
                return asset.size
        name = Path(urllib.parse.urlparse(url).path).name
        if mirror is not None and name and (mirror / name).is_file():
            return (mirror / name).stat().st_size
    for url in urls:
        request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "llms-from-scratch"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                length = response.headers.get("Content-Length")
        except (OSError, ValueError, http.client.HTTPException):  # unreachable, HTTP errors, malformed URLs
            continue
        if length and length.isdigit():
            return int(length)
    return None


def download_file(url: str, destination: str | os.PathLike, backup_url: str | None = None) -> Path:
    """Download ``url`` (else ``backup_url``) to the file ``destination``, through the data layer; return its path.

    A URL of a registered asset is fetched as that asset (checksum, cache, mirror); any other URL is copied from
    ``$LLMS_DATA_MIRROR`` when a file of the same name is there, and downloaded otherwise. As in the book, an
    existing ``destination`` is kept when its size equals the source's ("File already exists and is
    up-to-date"); when that size cannot be learned (offline, no mirror) the existing file is kept as well, since
    downloads land in place only once complete. Raises
    :class:`~llms_from_scratch.data.AssetUnavailableError` naming every source tried and how to supply the file.
    """
    from .utils import download_file as fetch_url  # imported here: it needs the notebook tools only for its other job

    destination = Path(destination)
    urls = [u for u in (url, backup_url) if u]
    if destination.is_file():
        size = _known_size(urls)
        if size is None or size == destination.stat().st_size:
            print(f"File already exists and is up-to-date: {destination}")
            return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    reasons = []
    for source in urls:
        # into a fresh folder beside the destination, so that the final rename is atomic and replaces any old file
        with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".download-") as tmp:
            try:
                fetched = fetch_url(source, tmp)
            except AssetUnavailableError as exc:
                # its advice names the temporary folder; the reader should place the file at the destination
                name = Path(urllib.parse.urlparse(source).path).name
                reasons.append(str(exc).replace(str(Path(tmp) / name), str(destination)))
                continue
            os.replace(fetched, destination)
        return destination
    raise AssetUnavailableError(f"could not download {destination.name} to {destination}:\n" + "\n".join(reasons))
