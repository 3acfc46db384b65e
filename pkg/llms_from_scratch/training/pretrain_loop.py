"""The pretraining run that one process (:mod:`.pretrain`) and several (:mod:`.distributed_pretrain`) share: its
state, the optimizer-step loop, and what a finished run hands back.

The loop is written once. What differs between one process and torchrun's ranks is a small :class:`Strategy`
object each of the two modules passes in: how a micro-batch's loss is computed (plain, compiled, or inside the
DDP/FSDP wrapper), whether gradients wait for the last micro-batch (DDP's ``no_sync``), how the step's loss is
summed (on each rank, then over the ranks), and how a checkpoint is gathered and written.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import InitVar, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..appendix_d import warmup_cosine_lr
from ..ch05 import generate, text_to_token_ids, token_ids_to_text
from .moe_gpt import aux_loss, update_correction_bias
from .moe_stats import layer_expert_counts
from .pretrain_args import CHECKPOINT_NAME, PretrainArgs
from .run_setup import TOKENS_NAME, autocast, choose_autocast_dtype, evaluate_loss, plot_losses
from .token_file import TokenWindows, record_path
from .token_loss import micro_batch_loss
from .window_stream import DistributedWindows

__all__ = ["PretrainRun", "Strategy", "WRITTEN", "finish", "note", "note_removed", "train_steps"]

# the files a run writes into its output folder: the folder lock removes temporary copies that a killed run left
WRITTEN = (CHECKPOINT_NAME, TOKENS_NAME, record_path(TOKENS_NAME).name)


class Strategy(Protocol):
    """What the loop asks of one process or of torchrun's ranks."""

    is_main: bool  # the process that shows progress, writes files and the plot
    world_size: int  # how many processes train together; each step covers all their batches
    module: nn.Module  # what is trained, clipped and evaluated: the model itself, or its DDP/FSDP wrapper
    prints_evaluations: bool  # whether the validation loss gets a line of its own

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean cross-entropy of one micro-batch."""

    def accumulating(self, last: bool) -> contextlib.AbstractContextManager:
        """Entered around a micro-batch's forward and backward; ``last``: the step's final micro-batch."""

    def step_loss(self, losses: list[torch.Tensor]) -> float:
        """The step's loss from this process's weighted micro-batch losses (over all ranks: the global mean)."""

    def save(self, run: PretrainRun) -> None:
        """Write the checkpoint of ``run`` as it stands."""


def note(args: PretrainArgs, is_main: bool, text: str) -> None:
    """A line on stderr that does not break the progress bar; one per run, not one per rank."""
    if is_main and not args.quiet:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)


def note_removed(args: PretrainArgs, is_main: bool, removed: list[Path] | None) -> None:
    if removed:
        note(args, is_main, f"removed {len(removed)} temporary file(s) left by a run that was killed: "
                            f"{', '.join(p.name for p in removed)}")


def _new_history(cfg: dict[str, Any]) -> dict[str, list]:
    history: dict[str, list] = {"step": [], "train_loss": [], "val_step": [], "val_loss": [], "tokens_seen": []}
    if cfg.get("moe_balance") == "aux":
        history["aux_loss"] = []
    return history


@dataclass
class PretrainRun:
    """A run's settings, data, model and optimizer, and how far it has come (``step``, ``tokens_seen``,
    ``history``). The schedule, the validation windows, the optimizer and the precision follow from the rest.

    ``parameters`` are those the optimizer updates (the wrapper's, under DDP and FSDP).
    """

    args: PretrainArgs
    cfg: dict[str, Any]
    device: torch.device
    out_dir: Path
    tokenizer: Any
    corpus: dict[str, Any]  # the token file's record: every checkpoint keeps it, so a resume can check the data
    train: TokenWindows | DistributedWindows  # the latter under torchrun: each rank its share of every epoch
    model: nn.Module  # the plain GPTModel: the MoE routers' statistics are read from it
    parameters: InitVar[Iterable[nn.Parameter]]
    world_size: int = 1
    step: int = 0
    tokens_seen: int = 0

    def __post_init__(self, parameters: Iterable[nn.Parameter]) -> None:
        args, cfg = self.args, self.cfg
        self.val = TokenWindows(self.out_dir / TOKENS_NAME, cfg["context_length"], args.batch_size, "val",
                                args.val_fraction, args.seed + 1)
        self.windows_per_step = args.batch_size * args.grad_accum_steps * self.world_size
        if args.steps is not None:
            self.total_steps = args.steps
        else:
            self.total_steps = max(1, math.ceil(args.epochs * len(self.train) / self.windows_per_step))
        warmup = args.warmup_steps if args.warmup_steps is not None else max(1, self.total_steps // 10)
        self.warmup_steps = min(warmup, self.total_steps - 1)
        self.autocast_dtype = choose_autocast_dtype(args.precision, self.device)
        # the fused AdamW kernel exists on GPUs; on CPUs the default is as fast
        self.optimizer = torch.optim.AdamW(parameters, lr=args.learning_rate, weight_decay=args.weight_decay,
                                           fused=self.device.type == "cuda")
        self.history = _new_history(cfg)

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def continue_from(self, ckpt: dict[str, Any]) -> None:
        """Take the data position and the counters from a checkpoint (the model, optimizer and random state are
        loaded by the caller, which knows how they were sharded)."""
        self.train.load_state_dict(ckpt["data"])
        self.step, self.tokens_seen, self.history = ckpt["step"], ckpt["tokens_seen"], ckpt["history"]


def train_steps(run: PretrainRun, strategy: Strategy) -> float:
    """Train ``run`` up to its last step (or ``stop_at_step``); returns the seconds it took.

    Each optimizer step draws ``grad_accum_steps`` micro-batches on every process, weights each one's loss by its
    share of the step's target tokens (:mod:`.token_loss`) so the summed gradients are the full batch's, clips the
    gradient norm after warmup, and sets the learning rate from the warmup + cosine schedule. Every
    ``eval_interval`` steps, and at the end, it measures the validation loss and saves a checkpoint.
    """
    from tqdm import tqdm

    args, cfg, device, history = run.args, run.cfg, run.device, run.history
    step_tokens = run.windows_per_step * cfg["context_length"]  # every window has a full row of targets
    balance = cfg.get("moe_balance")
    strategy.module.train()
    start = time.perf_counter()
    bar = tqdm(total=run.total_steps, initial=run.step, desc="pretrain", unit="step",
               disable=args.quiet or not strategy.is_main)
    end_step = run.total_steps if args.stop_at_step is None else min(args.stop_at_step, run.total_steps)
    while run.step < end_step:
        lr = warmup_cosine_lr(run.step, run.warmup_steps, run.total_steps, args.learning_rate, args.initial_lr,
                              args.min_lr)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        run.optimizer.zero_grad(set_to_none=True)
        losses, step_aux, step_counts = [], 0.0, 0
        for micro in range(args.grad_accum_steps):
            x, y = run.train.next_batch()
            x, y = x.to(device), y.to(device)
            with strategy.accumulating(last=micro == args.grad_accum_steps - 1):
                with autocast(device, run.autocast_dtype):
                    loss = strategy.loss(x, y)
                # weighted by its share of the step's target tokens: the step's gradient is the full batch's
                loss = micro_batch_loss(loss, y.numel(), step_tokens, strategy.world_size)
                losses.append(loss.detach())
                extra = aux_loss(run.model, cfg)  # None unless moe_balance is "aux"
                if extra is not None:
                    extra = micro_batch_loss(extra, y.numel(), step_tokens, strategy.world_size)
                    step_aux += extra.item()
                    loss = loss + extra
                if balance == "bias":
                    step_counts = step_counts + layer_expert_counts(run.model)  # (layers, experts)
                loss.backward()
            run.tokens_seen += x.numel() * strategy.world_size
        if args.max_norm is not None and run.step >= run.warmup_steps:
            torch.nn.utils.clip_grad_norm_(strategy.module.parameters(), max_norm=args.max_norm)
        run.optimizer.step()
        if balance == "bias":
            update_correction_bias(run.model, step_counts, cfg["moe_bias_rate"])
        run.step += 1
        step_loss = strategy.step_loss(losses)
        history["step"].append(run.step)
        history["train_loss"].append(step_loss)
        if "aux_loss" in history:
            history["aux_loss"].append(step_aux)
        history["tokens_seen"].append(run.tokens_seen)
        bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr:.2e}")
        bar.update(1)

        if run.step % args.eval_interval == 0 or run.step == end_step:
            val_loss = evaluate_loss(strategy.module, run.val, args.seed + 1, args.eval_iters, device,
                                     run.autocast_dtype)
            history["val_step"].append(run.step)
            history["val_loss"].append(val_loss)
            if strategy.prints_evaluations:
                bar.write(f"step {run.step}/{run.total_steps}: train loss {step_loss:.3f}, val loss {val_loss:.3f}, "
                          f"lr {lr:.2e}")
            strategy.save(run)
    bar.close()
    return time.perf_counter() - start


def finish(run: PretrainRun, strategy: Strategy, seconds: float) -> dict[str, Any]:
    """What ``pretrain`` returns: the history, the checkpoint, the loss plot (written by the main process only),
    a greedy sample from the prompt, the time and the counters."""
    plot_path = plot_losses(run.history, run.out_dir / "loss.png") if strategy.is_main else None
    sample = _sample(strategy.module, run)  # FSDP: every rank takes part in each forward
    return {"history": run.history, "checkpoint": run.checkpoint_path, "plot": plot_path, "sample": sample,
            "seconds": seconds, "steps": run.step, "tokens_seen": run.tokens_seen}


@torch.no_grad()
def _sample(module: nn.Module, run: PretrainRun) -> str:
    module.eval()
    idx = text_to_token_ids(run.args.sample_prompt, run.tokenizer).to(run.device)
    out = generate(module, idx, run.args.sample_tokens, run.cfg["context_length"])  # greedy: no RNG is used
    return token_ids_to_text(out.cpu(), run.tokenizer)
