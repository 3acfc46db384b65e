"""Training to a FLOP budget and scoring in bits per byte, the same way for every tokenization.

Models that cut text differently (bytes, BPE tokens, patches) are compared on two fixed quantities:

- **compute**: each run stops before its counted training FLOPs would exceed the same budget; the learning-rate
  schedule follows the share of the budget spent, so every run warms up and decays at the same points;
- **bits per byte**: the summed cross-entropy of all predicted units, in bits, divided by the UTF-8 bytes of those
  units. A BPE token that spells four bytes contributes its loss once and four bytes, so the numbers are comparable
  across vocabularies.

A stream of ids is read in windows of ``context_length + 1`` that overlap by one: the inputs are the first
``context_length`` ids and the targets the last ``context_length``, so every id but the stream's first is
predicted exactly once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..flops import training_flops_per_step
from .flops import blt_training_flops
from .model import BLTConfig
from .patching import patch_ids


class Batch(NamedTuple):
    inputs: tuple[torch.Tensor, ...]  # what the model is called with
    targets: torch.Tensor  # (batch, T) ids to predict
    n_bytes: int  # UTF-8 bytes behind the targets
    flops: int  # counted training FLOPs of a step on this batch


def stream_windows(n: int, context_length: int) -> list[tuple[int, int]]:
    """(start, stop) of every window over a stream of ``n`` ids; the last one may be shorter."""
    if context_length < 1:
        raise ValueError(f"context_length must be at least 1, got {context_length}")
    return [(s, min(s + context_length + 1, n)) for s in range(0, n - 1, context_length)]


def _window_groups(n: int, context_length: int, batch_size: int, cycle: bool) -> Iterator[list[tuple[int, int]]]:
    """Groups of equally long windows in stream order; with ``cycle`` full windows only, forever."""
    windows = stream_windows(n, context_length)
    full = [w for w in windows if w[1] - w[0] == context_length + 1]
    if cycle:
        if len(full) < batch_size:
            raise ValueError(f"the stream of {n} ids holds {len(full)} full windows of {context_length + 1}, fewer "
                             f"than batch_size={batch_size}; use more data or a smaller batch or context")
        while True:
            for first in range(0, len(full) - batch_size + 1, batch_size):
                yield full[first : first + batch_size]
    else:
        for first in range(0, len(full), batch_size):
            yield full[first : first + batch_size]
        yield from ([w] for w in windows if w[1] - w[0] != context_length + 1)


def gpt_batches(
    ids: torch.Tensor,
    cfg: dict,
    batch_size: int,
    bytes_per_id: torch.Tensor | None = None,
    cycle: bool = True,
) -> Iterator[Batch]:
    """Batches for chapter 4's ``GPTModel(cfg)`` from a 1-D stream of token ids.

    ``bytes_per_id[i]`` is the byte length of token ``i`` (``None``: every id is one byte, a byte-level model).
    FLOPs come from :func:`llms_from_scratch.flops.training_flops_per_step`.
    """
    for group in _window_groups(len(ids), cfg["context_length"], batch_size, cycle):
        rows = torch.stack([ids[start:stop] for start, stop in group])  # (batch, T + 1)
        targets = rows[:, 1:]
        n_bytes = targets.numel() if bytes_per_id is None else int(bytes_per_id[targets].sum())
        flops = training_flops_per_step(cfg, len(group), targets.shape[1])
        yield Batch((rows[:, :-1],), targets, n_bytes, flops)


def blt_batches(
    data: torch.Tensor, starts: torch.Tensor, cfg: BLTConfig, batch_size: int, cycle: bool = True
) -> Iterator[Batch]:
    """Batches for :class:`ByteLatentTransformer` from a byte stream and its patch starts (both 1-D).

    Each window begins a fresh patch; the patch ids cover the ``T + 1`` bytes of the window.
    """
    if starts.shape != data.shape:
        raise ValueError(f"starts {tuple(starts.shape)} must have one entry per byte of data {tuple(data.shape)}")
    for group in _window_groups(len(data), cfg.context_length, batch_size, cycle):
        rows = torch.stack([data[start:stop] for start, stop in group])  # (batch, T + 1)
        ids = patch_ids(torch.stack([starts[start:stop] for start, stop in group]))  # (batch, T + 1)
        t = rows.shape[1] - 1
        flops = blt_training_flops(cfg, t, (ids[:, t - 1] + 1).tolist())  # patches holding the input bytes
        yield Batch((rows[:, :-1], ids), rows[:, 1:], rows[:, 1:].numel(), flops)


@dataclass
class TrainLog:
    losses: list[float] = field(default_factory=list)  # mean nats per predicted unit, each step
    bits_per_byte: list[float] = field(default_factory=list)  # the same loss per byte, in bits
    flops: list[int] = field(default_factory=list)  # FLOPs spent after each step
    bytes_seen: int = 0
    seconds: float = 0.0


def lr_at(fraction: float, lr: float, warmup: float = 0.05, final: float = 0.1) -> float:
    """Linear warm-up over the first ``warmup`` of the budget, then cosine decay to ``final * lr``."""
    if fraction < warmup:
        return lr * fraction / warmup
    progress = min(1.0, (fraction - warmup) / (1 - warmup))
    return lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_to_budget(
    model: nn.Module,
    batches: Iterator[Batch],
    budget_flops: int,
    lr: float = 2e-3,
    weight_decay: float = 0.1,
    on_step: Callable[[int, TrainLog], None] | None = None,
) -> TrainLog:
    """Train with AdamW until the next step would exceed ``budget_flops``; returns the per-step log."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    device = next(model.parameters()).device
    log = TrainLog()
    spent = 0
    start = time.perf_counter()
    model.train()
    for batch in batches:
        if spent + batch.flops > budget_flops:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(spent / budget_flops, lr)
        logits = model(*(x.to(device) for x in batch.inputs))
        loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.to(device).flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        spent += batch.flops
        log.losses.append(loss.item())
        log.bits_per_byte.append(loss.item() * batch.targets.numel() / batch.n_bytes / math.log(2))
        log.flops.append(spent)
        log.bytes_seen += batch.n_bytes
        if on_step is not None:
            on_step(len(log.losses), log)
    log.seconds = time.perf_counter() - start
    model.eval()
    return log


@torch.no_grad()
def bits_per_byte(model: nn.Module, batches: Iterator[Batch]) -> float:
    """Summed cross-entropy of all targets in ``batches``, in bits, per UTF-8 byte of those targets."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nats, n_bytes = 0.0, 0
    for batch in batches:
        logits = model(*(x.to(device) for x in batch.inputs))
        nats += F.cross_entropy(logits.flatten(0, 1).float(), batch.targets.to(device).flatten(),
                                reduction="sum").item()
        n_bytes += batch.n_bytes
    model.train(was_training)
    if n_bytes == 0:
        raise ValueError("the batches hold no targets; evaluate on a stream of at least two ids")
    return nats / n_bytes / math.log(2)
