"""Pretraining a GPTModel on your own text: the chapter 5 loop with Appendix D's refinements, made resumable.

What a run does, in order:

1. check every setting, lock the output folder (one run at a time; temporary files of killed runs are removed)
   and, with ``resume=True``, check that the checkpoint is intact and was trained on this model and this data;
2. tokenize the corpus once into a memory-mapped uint16 file (``tokens.bin`` in the output folder, reused while
   its record ``tokens.json`` still matches the corpus and the tokenizer), and split it into training and
   validation tokens;
3. each optimizer step draws ``grad_accum_steps`` random batches of windows, weights each one's loss by its share
   of the step's target tokens (:mod:`.token_loss`) so their summed gradients are the full batch's, clips the
   gradient norm, and sets the learning rate from the warmup + cosine schedule;
4. every ``eval_interval`` steps it measures the validation loss on fixed batches and saves a checkpoint
   atomically: model, optimizer, random-number state, data position, step, configuration, loss history, the
   record of the corpus it trains on, and a checksum of all of it.

``resume=True`` continues from that checkpoint, and refuses one that is damaged, was trained with other model
options or on other data (a changed, added or removed file). On the CPU the continued run is bit-identical to one
that was never interrupted (``tests/training/test_pretrain.py`` checks this), because everything random (dropout
and the data sampler) is restored exactly.

``strategy="ddp"`` or ``"fsdp"`` trains on every process torchrun starts (:mod:`.distributed_pretrain`). Both
drive the same step loop (:mod:`.pretrain_loop`); this module sets up one process and says how it computes a
micro-batch's loss and writes a checkpoint (:class:`_OneProcess`).

``moe=True`` gives every block mixture-of-experts feed-forward layers (:mod:`.moe_gpt`); the MoE settings are part
of the model configuration the checkpoint keeps. With ``moe_balance="aux"`` each micro-batch's loss gets the
weighted load-balancing loss (logged as ``aux_loss``, kept out of ``train_loss``); with ``"bias"`` the routers'
correction biases move after each optimizer step, by the expert loads of that step's micro-batches.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .checkpoints import load_model_state_dict, save_checkpoint
from .fused_loss import gpt_hidden_states, lm_loss
from .moe_gpt import build_gpt
from .pretrain_args import CHECKPOINT_NAME, PretrainArgs, ResumeError, moe_model_keys
from .pretrain_loop import WRITTEN, PretrainRun, finish, note, note_removed, train_steps
from .run_folder import exclusive_run_folder
from .run_setup import (
    TOKENS_NAME,
    check_args,
    checkpoint_to_resume,
    model_config,
    resolve_device,
    rng_state,
    set_rng_state,
)
from .token_file import TokenWindows, prepare_token_file

__all__ = ["PretrainArgs", "ResumeError", "check_args", "model_config", "pretrain"]


def pretrain(args: PretrainArgs) -> dict[str, Any]:
    """Run (or resume) pretraining; returns the loss history and where the checkpoint and plot were written.

    Raises ``ValueError`` (or ``FileNotFoundError``) for settings that cannot work, :class:`ResumeError` when a
    resumed run does not fit its checkpoint, ``CheckpointError`` for a damaged checkpoint, and
    ``FolderInUseError`` when another live run trains into ``out_dir``.
    """
    check_args(args)
    if args.strategy != "single":
        from .distributed_pretrain import pretrain_distributed

        return pretrain_distributed(args)
    out_dir = Path(args.out_dir)
    with exclusive_run_folder(out_dir, WRITTEN) as removed:
        note_removed(args, True, removed)
        return _pretrain(args, out_dir)


class _OneProcess:
    """The loop's :class:`.pretrain_loop.Strategy` for one process: the plain (or compiled) model computes the
    loss, every micro-batch's gradient is added at once, and the checkpoint is the model's own state."""

    is_main = True
    world_size = 1
    # the evaluations are printed even with --quiet, which hides the progress bar only
    prints_evaluations = True

    def __init__(self, model: torch.nn.Module, args: PretrainArgs):
        self.module, self.fused_loss = model, args.fused_loss
        # the fused loss needs the hidden states, not the logits: compile the part of the model that computes them
        hidden_states = functools.partial(gpt_hidden_states, model)
        self.hidden_states = torch.compile(hidden_states) if args.compile else hidden_states
        self.train_model = torch.compile(model) if args.compile and not args.fused_loss else model

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.fused_loss:  # the same mean cross-entropy, without the full logits matrix
            return lm_loss(self.module, inputs, targets, hidden_states=self.hidden_states)
        logits = self.train_model(inputs)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    def accumulating(self, last: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def step_loss(self, losses: list[torch.Tensor]) -> float:
        return sum(loss.item() for loss in losses)

    def save(self, run: PretrainRun) -> None:
        save_checkpoint(run.checkpoint_path, self.module, run.optimizer, step=run.step, tokens_seen=run.tokens_seen,
                        config=run.cfg, args=asdict(run.args), rng=rng_state(run.device),
                        data=run.train.state_dict(), history=run.history, corpus=run.corpus)


def _pretrain(args: PretrainArgs, out_dir: Path) -> dict[str, Any]:
    from ..data import gpt2_encoding

    tokenizer = gpt2_encoding()
    device = resolve_device(args.device)
    cfg = model_config(args)
    cfg.update(moe_model_keys(args, cfg["emb_dim"]))
    # the checkpoint is checked before the corpus is tokenized: a run that cannot resume stops at once
    ckpt = checkpoint_to_resume(out_dir / CHECKPOINT_NAME, cfg, args, tokenizer) if args.resume else None

    token_path = out_dir / TOKENS_NAME
    corpus, rebuilt = prepare_token_file(args.data, token_path, tokenizer)
    if rebuilt is not None:
        note(args, True, f"tokenizing {args.data} into {token_path}: {rebuilt}")
    train = TokenWindows(token_path, cfg["context_length"], args.batch_size, "train", args.val_fraction, args.seed)

    torch.manual_seed(args.seed)
    model = build_gpt(cfg).to(device)  # chapter 4's GPTModel, with MoE feed-forward blocks if cfg asks for them
    run = PretrainRun(args, cfg, device, out_dir, tokenizer, corpus, train, model, model.parameters())
    if ckpt is not None:
        # loaded on the CPU: load_state_dict copies weights and optimizer state to the model's device, and the
        # random-number states must be CPU tensors
        load_model_state_dict(model, ckpt["model"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"], device)
        run.continue_from(ckpt)
        del ckpt

    strategy = _OneProcess(model, args)
    return finish(run, strategy, train_steps(run, strategy))
