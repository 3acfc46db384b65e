"""``pretrain`` with ``--strategy ddp`` or ``fsdp``: the same run, its batches spread over the ranks torchrun starts.

What differs from the one-process loop in :mod:`.pretrain`:

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
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..appendix_d import warmup_cosine_lr
from ..ch04 import GPTModel
from ..ch05 import generate, text_to_token_ids, token_ids_to_text
from .checkpoints import read_checkpoint, save_checkpoint_state
from .distributed import Ranks, full_state, load_full_state, on_rank0, process_group, wrap_model
from .pretrain_args import CHECKPOINT_NAME, PretrainArgs
from .run_folder import exclusive_run_folder
from .run_setup import (
    TOKENS_NAME,
    autocast,
    check_args,
    checkpoint_to_resume,
    choose_autocast_dtype,
    evaluate_loss,
    model_config,
    plot_losses,
    rng_state,
    set_rng_state,
)
from .token_file import TokenWindows, prepare_token_file, record_path
from .token_loss import micro_batch_loss
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
        written = (CHECKPOINT_NAME, TOKENS_NAME, record_path(TOKENS_NAME).name)
        removed = on_rank0(ranks, lambda: lock.enter_context(exclusive_run_folder(out_dir, written)))
        if removed:
            _note(args, ranks, f"removed {len(removed)} temporary file(s) left by a run that was killed: "
                               f"{', '.join(p.name for p in removed)}")
        return _train(args, ranks, out_dir)


def _note(args: PretrainArgs, ranks: Ranks, text: str) -> None:
    if ranks.is_main and not args.quiet:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)


def _prepare(args: PretrainArgs, cfg: dict[str, Any], out_dir: Path, tokenizer):
    """Rank 0's share: the checkpoint checked (not kept: each rank reads it), then the token file."""
    if args.resume:
        checkpoint_to_resume(out_dir / CHECKPOINT_NAME, cfg, args, tokenizer)
    return prepare_token_file(args.data, out_dir / TOKENS_NAME, tokenizer)


def _global_loss(step_loss: torch.Tensor) -> float:
    dist.all_reduce(step_loss)  # each rank holds its share of the global mean
    return step_loss.item()


def _train(args: PretrainArgs, ranks: Ranks, out_dir: Path) -> dict[str, Any]:
    from tqdm import tqdm

    from ..data import gpt2_encoding

    checkpoint_path = out_dir / CHECKPOINT_NAME
    tokenizer = gpt2_encoding()
    device = ranks.device
    autocast_dtype = choose_autocast_dtype(args.precision, device)
    cfg = model_config(args)
    corpus, rebuilt = on_rank0(ranks, lambda: _prepare(args, cfg, out_dir, tokenizer))
    if rebuilt is not None:
        _note(args, ranks, f"tokenizing {args.data} into {out_dir / TOKENS_NAME}: {rebuilt}")
    token_path = out_dir / TOKENS_NAME
    train = DistributedWindows(token_path, cfg["context_length"], args.batch_size, ranks.rank, ranks.world_size,
                               "train", args.val_fraction, args.seed)
    val = TokenWindows(token_path, cfg["context_length"], args.batch_size, "val", args.val_fraction, args.seed + 1)
    windows_per_step = args.batch_size * args.grad_accum_steps * ranks.world_size
    total_steps = args.steps if args.steps is not None else max(1, math.ceil(args.epochs * len(train)
                                                                               / windows_per_step))
    warmup_steps = args.warmup_steps if args.warmup_steps is not None else max(1, total_steps // 10)
    warmup_steps = min(warmup_steps, total_steps - 1)

    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = GPTModel(cfg).to(device)
    module = wrap_model(model, args.strategy, ranks, args.fused_loss)
    optimizer = torch.optim.AdamW(module.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay,
                                  fused=device.type == "cuda")
    torch.manual_seed(args.seed + 1 + ranks.rank)  # dropout: each rank its own random numbers
    history: dict[str, list] = {"step": [], "train_loss": [], "val_step": [], "val_loss": [], "tokens_seen": []}
    step, tokens_seen = 0, 0

    if args.resume:  # rank 0 has checked it; every rank reads the full state and keeps its own shard
        ckpt = read_checkpoint(checkpoint_path, map_location="cpu", require_checksum=True)
        load_full_state(model, optimizer, ckpt["model"], ckpt["optimizer"])
        train.load_state_dict(ckpt["data"])
        rng = ckpt["rng"]
        if isinstance(rng, list) and len(rng) == ranks.world_size:
            set_rng_state(rng[ranks.rank], device)  # the same ranks: the run continues bit for bit
        else:  # another number of ranks: new dropout draws, the same data stream
            torch.manual_seed(args.seed + 1 + ranks.rank + ckpt["step"] * ranks.world_size)
        step, tokens_seen, history = ckpt["step"], ckpt["tokens_seen"], ckpt["history"]
        del ckpt

    def save() -> None:
        model_state, optimizer_state = full_state(model, optimizer)  # collective: every rank takes part
        rng = [None] * ranks.world_size
        dist.all_gather_object(rng, rng_state(device))
        if ranks.is_main:
            save_checkpoint_state(checkpoint_path, model_state, optimizer_state, step=step, tokens_seen=tokens_seen,
                                  config=cfg, args=asdict(args), rng=rng, data=train.state_dict(),
                                  history=history, corpus=corpus, world_size=ranks.world_size)
        dist.barrier()  # no rank runs ahead of a checkpoint that is still being written

    step_tokens = windows_per_step * cfg["context_length"]  # every window has a full row of targets
    module.train()
    start = time.perf_counter()
    bar = tqdm(total=total_steps, initial=step, desc="pretrain", unit="step", disable=args.quiet or not ranks.is_main)
    end_step = total_steps if args.stop_at_step is None else min(args.stop_at_step, total_steps)
    while step < end_step:
        lr = warmup_cosine_lr(step, warmup_steps, total_steps, args.learning_rate, args.initial_lr, args.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        step_loss = torch.zeros((), device=device)
        for micro in range(args.grad_accum_steps):
            x, y = train.next_batch()
            x, y = x.to(device), y.to(device)
            last = micro == args.grad_accum_steps - 1
            # DDP: average the gradients once, after the last micro-batch
            no_sync = module.no_sync() if args.strategy == "ddp" and not last else contextlib.nullcontext()
            with no_sync:
                with autocast(device, autocast_dtype):
                    loss = micro_batch_loss(module(x, y), y.numel(), step_tokens, ranks.world_size)
                loss.backward()
            step_loss += loss.detach().float() / ranks.world_size
            tokens_seen += x.numel() * ranks.world_size
        if args.max_norm is not None and step >= warmup_steps:
            torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm=args.max_norm)
        optimizer.step()
        step += 1
        loss_value = _global_loss(step_loss)
        history["step"].append(step)
        history["train_loss"].append(loss_value)
        history["tokens_seen"].append(tokens_seen)
        bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
        bar.update(1)

        if step % args.eval_interval == 0 or step == end_step:
            val_loss = evaluate_loss(module, val, args.seed + 1, args.eval_iters, device, autocast_dtype)
            history["val_step"].append(step)
            history["val_loss"].append(val_loss)
            if ranks.is_main and not args.quiet:
                bar.write(f"step {step}/{total_steps}: train loss {loss_value:.3f}, val loss {val_loss:.3f}, "
                          f"lr {lr:.2e}")
            save()
    bar.close()
    elapsed = time.perf_counter() - start

    plot_path = plot_losses(history, out_dir / "loss.png") if ranks.is_main else None
    sample = _sample(module, tokenizer, args, cfg, device)  # FSDP: every rank takes part in each forward
    return {"history": history, "checkpoint": checkpoint_path, "plot": plot_path, "sample": sample,
            "seconds": elapsed, "steps": step, "tokens_seen": tokens_seen, "rank": ranks.rank,
            "world_size": ranks.world_size}


@torch.no_grad()
def _sample(module, tokenizer, args: PretrainArgs, cfg: dict[str, Any], device) -> str:
    module.eval()
    idx = text_to_token_ids(args.sample_prompt, tokenizer).to(device)
    out = generate(module, idx, args.sample_tokens, cfg["context_length"])  # greedy: no RNG is used
    return token_ids_to_text(out.cpu(), tokenizer)
