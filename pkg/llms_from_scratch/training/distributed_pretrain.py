"""``pretrain`` with ``--strategy ddp`` or ``fsdp``: the same run, its batches spread over the ranks torchrun starts.

The step loop is the one :mod:`.pretrain` drives (:mod:`.pretrain_loop`); what differs from one process is set up
here, or done by :class:`_Ranks`, the loop's strategy:

* rank 0 alone locks the output folder, checks the checkpoint to resume and builds the token file; the other
  ranks wait for it (:func:`.distributed.on_rank0`), then read the token file through their own memory map;
* the training windows come from :class:`.window_stream.DistributedWindows`: every epoch is one random order
  of all non-overlapping windows, dealt out to the ranks, so no window is read twice or left out in an epoch;
* an optimizer step covers ``batch_size * grad_accum_steps * world_size`` windows, and each micro-batch's loss is
  weighted by its share of the step's target tokens (:mod:`.token_loss`), so the step equals one process
  training on the same global batch; the logged loss is that global mean;
* checkpoints hold the full state gathered to rank 0 (:func:`.distributed.full_state`), the data position and
  every rank's random state; rank 0 writes them. They resume on any number of ranks, bit-identically when the
  number is the same (on CPUs) and continuing the loss curve when it differs (the windows go on from the
  next unread one; dropout draws new random numbers);
* only rank 0 shows progress, writes the plot and returns the sample text that the command prints.

Started without torchrun, ``--strategy ddp`` or ``fsdp`` trains in a group of one process: the reference that
runs on several ranks match.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .checkpoints import read_checkpoint, save_checkpoint_state
from .distributed import Ranks, full_state, load_full_state, on_rank0, process_group, wrap_model
from .moe_gpt import build_gpt
from .pretrain_args import CHECKPOINT_NAME, PretrainArgs
from .pretrain_loop import WRITTEN, PretrainRun, finish, note, note_removed, train_steps
from .run_folder import exclusive_run_folder
from .run_setup import TOKENS_NAME, check_args, checkpoint_to_resume, model_config, rng_state, set_rng_state
from .token_file import prepare_token_file
from .window_stream import DistributedWindows

__all__ = ["pretrain_distributed"]


def pretrain_distributed(args: PretrainArgs) -> dict[str, Any]:
    """Run (or resume) pretraining on every rank; returns what :func:`.pretrain.pretrain` returns, plus ``rank``.

    Every rank torchrun started calls this with the same arguments. Errors are those of ``pretrain``; one found
    by rank 0 (a folder in use, a checkpoint that does not fit) is raised on every rank.
    """
    check_args(args)
    out_dir = Path(args.out_dir)
    with process_group(args.device) as ranks, contextlib.ExitStack() as lock:
        removed = on_rank0(ranks, lambda: lock.enter_context(exclusive_run_folder(out_dir, WRITTEN)))
        note_removed(args, ranks.is_main, removed)
        return _train(args, ranks, out_dir)


def _prepare(args: PretrainArgs, cfg: dict[str, Any], out_dir: Path, tokenizer):
    """Rank 0's share: the checkpoint checked (not kept: each rank reads it), then the token file."""
    if args.resume:
        checkpoint_to_resume(out_dir / CHECKPOINT_NAME, cfg, args, tokenizer)
    return prepare_token_file(args.data, out_dir / TOKENS_NAME, tokenizer)


class _Ranks:
    """The loop's :class:`.pretrain_loop.Strategy` on torchrun's ranks: the DDP/FSDP wrapper computes the loss,
    DDP averages the gradients once per step, the step's loss is averaged over the ranks, and every rank takes
    part in gathering the checkpoint that rank 0 writes."""

    def __init__(self, ranks: Ranks, module: torch.nn.Module, model: torch.nn.Module, args: PretrainArgs):
        self.ranks, self.module, self.model, self.ddp = ranks, module, model, args.strategy == "ddp"
        self.is_main, self.world_size = ranks.is_main, ranks.world_size
        self.prints_evaluations = ranks.is_main and not args.quiet

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.module(inputs, targets)  # inside the wrapper's forward, which DDP and FSDP hook into

    def accumulating(self, last: bool) -> contextlib.AbstractContextManager:
        # DDP: average the gradients once, after the last micro-batch
        return self.module.no_sync() if self.ddp and not last else contextlib.nullcontext()

    def step_loss(self, losses: list[torch.Tensor]) -> float:
        step_loss = torch.zeros((), device=self.ranks.device)
        for loss in losses:
            step_loss += loss.float() / self.world_size
        dist.all_reduce(step_loss)  # each rank holds its share of the global mean
        return step_loss.item()

    def save(self, run: PretrainRun) -> None:
        model_state, optimizer_state = full_state(self.model, run.optimizer)  # collective: every rank takes part
        rng = [None] * self.world_size
        dist.all_gather_object(rng, rng_state(run.device))
        if self.is_main:
            save_checkpoint_state(run.checkpoint_path, model_state, optimizer_state, step=run.step,
                                  tokens_seen=run.tokens_seen, config=run.cfg, args=asdict(run.args), rng=rng,
                                  data=run.train.state_dict(), history=run.history, corpus=run.corpus,
                                  world_size=self.world_size)
        dist.barrier()  # no rank runs ahead of a checkpoint that is still being written


def _train(args: PretrainArgs, ranks: Ranks, out_dir: Path) -> dict[str, Any]:
    from ..data import gpt2_encoding

    tokenizer = gpt2_encoding()
    device = ranks.device
    cfg = model_config(args)  # --moe is refused with ddp and fsdp: the dense configuration
    corpus, rebuilt = on_rank0(ranks, lambda: _prepare(args, cfg, out_dir, tokenizer))
    if rebuilt is not None:
        note(args, ranks.is_main, f"tokenizing {args.data} into {out_dir / TOKENS_NAME}: {rebuilt}")
    train = DistributedWindows(out_dir / TOKENS_NAME, cfg["context_length"], args.batch_size, ranks.rank,
                               ranks.world_size, "train", args.val_fraction, args.seed)

    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = build_gpt(cfg).to(device)
    module = wrap_model(model, args.strategy, ranks, args.fused_loss)
    run = PretrainRun(args, cfg, device, out_dir, tokenizer, corpus, train, model, module.parameters(),
                      world_size=ranks.world_size)
    torch.manual_seed(args.seed + 1 + ranks.rank)  # dropout: each rank its own random numbers

    if args.resume:  # rank 0 has checked it; every rank reads the full state and keeps its own shard
        ckpt = read_checkpoint(run.checkpoint_path, map_location="cpu", require_checksum=True)
        load_full_state(model, run.optimizer, ckpt["model"], ckpt["optimizer"])
        rng = ckpt["rng"]
        if isinstance(rng, list) and len(rng) == ranks.world_size:
            set_rng_state(rng[ranks.rank], device)  # the same ranks: the run continues bit for bit
        else:  # another number of ranks: new dropout draws, the same data stream
            torch.manual_seed(args.seed + 1 + ranks.rank + ckpt["step"] * ranks.world_size)
        run.continue_from(ckpt)
        del ckpt

    strategy = _Ranks(ranks, module, model, args)
    return {**finish(run, strategy, train_steps(run, strategy)), "rank": ranks.rank, "world_size": ranks.world_size}
