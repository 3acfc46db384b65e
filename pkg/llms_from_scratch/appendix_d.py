"""Appendix D: the refinements that make pretraining stable: linear warmup, cosine decay, gradient clipping.

* Warmup raises the learning rate linearly from ``initial_lr`` to the optimizer's peak over the first
  ``warmup_steps`` steps, so the large, noisy gradients of a freshly initialised model do not knock it far off.
* Cosine decay then lowers it along half a cosine wave to ``min_lr`` at the last step.
* Gradient clipping rescales all gradients together whenever their joint L2 norm exceeds ``max_norm`` (1.0).

:func:`warmup_cosine_lr` is the schedule as a pure function of the step, so the training loop here, the plots
in the notebook and the pretraining command all use the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from .ch05 import calc_loss_batch, evaluate_model, generate_and_print_sample

__all__ = ["find_highest_gradient", "train_model", "warmup_cosine_lr"]


def warmup_cosine_lr(step: int, warmup_steps: int, total_steps: int, peak_lr: float, initial_lr: float = 3e-05,
                     min_lr: float = 1e-6) -> float:
    """Learning rate of the 0-based ``step``: linear warmup for ``warmup_steps`` steps, then cosine decay.

    Step 0 uses ``initial_lr``, step ``warmup_steps`` reaches ``peak_lr``, and the last step
    (``total_steps - 1``) reaches ``min_lr``.
    """
    if warmup_steps < 0 or total_steps < 1 or warmup_steps >= total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps}, total_steps={total_steps}"
        )
    if step < warmup_steps:
        return initial_lr + step * (peak_lr - initial_lr) / warmup_steps
    decay_steps = max(total_steps - 1 - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)  # 0 at the peak, 1 at the last step
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def find_highest_gradient(model: nn.Module) -> float:
    """The largest single gradient value over all parameters (``-inf`` when no gradient exists yet)."""
    highest = None
    for param in model.parameters():
        if param.grad is not None:
            value = param.grad.detach().max()
            highest = value if highest is None else torch.maximum(highest, value)
    return float("-inf") if highest is None else highest.item()


def train_model(model: nn.Module, train_loader: Iterable, val_loader: Iterable, optimizer: torch.optim.Optimizer,
                device: torch.device | str, n_epochs: int, eval_freq: int, eval_iter: int, start_context: str,
                tokenizer, warmup_steps: int, initial_lr: float = 3e-05, min_lr: float = 1e-6,
                orig_book_version: bool = False, *,
                max_norm: float | None = 1.0) -> tuple[list[float], list[float], list[int], list[float]]:
    """Chapter 5's ``train_model_simple`` with warmup, cosine decay and gradient clipping.

    The peak learning rate is the one the optimizer was created with. Clipping starts once warmup is over
    (during warmup the small learning rate already keeps the updates small): from step ``warmup_steps`` on.
    ``orig_book_version=True`` reproduces the printed book's ``>`` comparison, which skips clipping on that
    first step after warmup. ``max_norm`` (keyword only, not in the book) sets the clipping threshold;
    ``None`` turns clipping off. Returns training losses, validation losses, tokens seen (at each evaluation)
    and the learning rate of every step.
    """
    train_losses, val_losses, track_tokens_seen, track_lrs = [], [], [], []
    tokens_seen, global_step = 0, -1
    peak_lr = optimizer.param_groups[0]["lr"]
    total_training_steps = len(train_loader) * n_epochs
    first_clipped_step = warmup_steps + 1 if orig_book_version else warmup_steps

    for epoch in range(n_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            global_step += 1

            lr = warmup_cosine_lr(global_step, warmup_steps, total_training_steps, peak_lr, initial_lr, min_lr)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            track_lrs.append(lr)

            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            if max_norm is not None and global_step >= first_clipped_step:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)
            optimizer.step()
            tokens_seen += input_batch.numel()

            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(f"Ep {epoch + 1} (Iter {global_step:06d}): Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")

        generate_and_print_sample(model, tokenizer, device, start_context)

    return train_losses, val_losses, track_tokens_seen, track_lrs
