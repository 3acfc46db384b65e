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

``strategy="ddp"`` or ``"fsdp"`` trains on every process torchrun starts (:mod:`.distributed_pretrain`).

``moe=True`` gives every block mixture-of-experts feed-forward layers (:mod:`.moe_gpt`); the MoE settings are part
of the model configuration the checkpoint keeps. With ``moe_balance="aux"`` each micro-batch's loss gets the
weighted load-balancing loss (logged as ``aux_loss``, kept out of ``train_loss``); with ``"bias"`` the routers'
correction biases move after each optimizer step, by the expert loads of that step's micro-batches.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..appendix_d import warmup_cosine_lr
from ..ch05 import generate, text_to_token_ids, token_ids_to_text
from .checkpoints import load_model_state_dict, save_checkpoint, unwrap_model
from .fused_loss import gpt_hidden_states, lm_loss
from .moe_gpt import aux_loss, build_gpt, update_correction_bias
from .moe_stats import layer_expert_counts
from .pretrain_args import CHECKPOINT_NAME, PretrainArgs, ResumeError, moe_model_keys
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
    resolve_device,
    rng_state,
    set_rng_state,
)
from .token_file import TokenWindows, prepare_token_file, record_path
from .token_loss import micro_batch_loss

__all__ = ["PretrainArgs", "ResumeError", "check_args", "model_config", "pretrain"]



def _total_steps(args: PretrainArgs, train: TokenWindows) -> int:
    if (args.steps is None) == (args.epochs is None):
        raise ValueError("give exactly one of steps or epochs")
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"steps must be >= 1, got {args.steps}")
        return args.steps
    windows_per_step = args.batch_size * args.grad_accum_steps
    return max(1, math.ceil(args.epochs * len(train) / windows_per_step))


def _note(args: PretrainArgs, text: str) -> None:
    if not args.quiet:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)


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
    written = (CHECKPOINT_NAME, TOKENS_NAME, record_path(TOKENS_NAME).name)
    with exclusive_run_folder(out_dir, written) as removed:
        if removed:
            _note(args, f"removed {len(removed)} temporary file(s) left by a run that was killed: "
                        f"{', '.join(p.name for p in removed)}")
        return _pretrain(args, out_dir)


def _pretrain(args: PretrainArgs, out_dir: Path) -> dict[str, Any]:
    from tqdm import tqdm

    from ..data import gpt2_encoding

    checkpoint_path = out_dir / CHECKPOINT_NAME
    tokenizer = gpt2_encoding()
    device = resolve_device(args.device)
    autocast_dtype = choose_autocast_dtype(args.precision, device)
    cfg = model_config(args)
    cfg.update(moe_model_keys(args, cfg["emb_dim"]))
    # the checkpoint is checked before the corpus is tokenized: a run that cannot resume stops at once
    ckpt = checkpoint_to_resume(checkpoint_path, cfg, args, tokenizer) if args.resume else None

    token_path = out_dir / TOKENS_NAME
    corpus, rebuilt = prepare_token_file(args.data, token_path, tokenizer)
    if rebuilt is not None:
        _note(args, f"tokenizing {args.data} into {token_path}: {rebuilt}")
    train = TokenWindows(token_path, cfg["context_length"], args.batch_size, "train", args.val_fraction, args.seed)
    val = TokenWindows(token_path, cfg["context_length"], args.batch_size, "val", args.val_fraction, args.seed + 1)
    total_steps = _total_steps(args, train)
    warmup_steps = args.warmup_steps if args.warmup_steps is not None else max(1, total_steps // 10)
    warmup_steps = min(warmup_steps, total_steps - 1)

    torch.manual_seed(args.seed)
    model = build_gpt(cfg).to(device)  # chapter 4's GPTModel, with MoE feed-forward blocks if cfg asks for them
    fused = device.type == "cuda"  # the fused AdamW kernel exists on GPUs; on CPUs the default is as fast
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay,
                                  fused=fused)
    history: dict[str, list] = {"step": [], "train_loss": [], "val_step": [], "val_loss": [], "tokens_seen": []}
    if cfg.get("moe_balance") == "aux":
        history["aux_loss"] = []
    step, tokens_seen = 0, 0

    if ckpt is not None:
        # loaded on the CPU: load_state_dict copies weights and optimizer state to the model's device, and the
        # random-number states must be CPU tensors
        load_model_state_dict(model, ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        train.load_state_dict(ckpt["data"])
        set_rng_state(ckpt["rng"], device)
        step, tokens_seen, history = ckpt["step"], ckpt["tokens_seen"], ckpt["history"]
        del ckpt

    # the fused loss needs the hidden states, not the logits: compile the part of the model that computes them
    hidden_states = functools.partial(gpt_hidden_states, model)
    if args.compile:
        hidden_states = torch.compile(hidden_states)
    train_model = torch.compile(model) if args.compile and not args.fused_loss else model

    def save() -> None:
        save_checkpoint(checkpoint_path, model, optimizer, step=step, tokens_seen=tokens_seen, config=cfg,
                        args=asdict(args), rng=rng_state(device), data=train.state_dict(), history=history,
                        corpus=corpus)

    step_tokens = args.batch_size * args.grad_accum_steps * cfg["context_length"]  # every window: a full row
    model.train()
    start = time.perf_counter()
    bar = tqdm(total=total_steps, initial=step, desc="pretrain", unit="step", disable=args.quiet)
    end_step = total_steps if args.stop_at_step is None else min(args.stop_at_step, total_steps)
    while step < end_step:
        lr = warmup_cosine_lr(step, warmup_steps, total_steps, args.learning_rate, args.initial_lr, args.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        step_loss, step_aux, step_counts = 0.0, 0.0, 0
        for _ in range(args.grad_accum_steps):
            x, y = train.next_batch()
            x, y = x.to(device), y.to(device)
            with autocast(device, autocast_dtype):
                if args.fused_loss:  # the same mean cross-entropy, without the full logits matrix
                    loss = lm_loss(model, x, y, hidden_states=hidden_states)
                else:
                    logits = train_model(x)
                    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
            # weighted by its share of the step's target tokens: the step's gradient is the full batch's
            loss = micro_batch_loss(loss, y.numel(), step_tokens)
            step_loss += loss.item()
            extra = aux_loss(model, cfg)  # None unless moe_balance is "aux"
            if extra is not None:
                extra = micro_batch_loss(extra, y.numel(), step_tokens)
                step_aux += extra.item()
                loss = loss + extra
            if cfg.get("moe_balance") == "bias":
                step_counts = step_counts + layer_expert_counts(model)  # (layers, experts)
            loss.backward()
            tokens_seen += x.numel()
        if args.max_norm is not None and step >= warmup_steps:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=args.max_norm)
        optimizer.step()
        if cfg.get("moe_balance") == "bias":
            update_correction_bias(model, step_counts, cfg["moe_bias_rate"])
        step += 1
        history["step"].append(step)
        history["train_loss"].append(step_loss)
        if "aux_loss" in history:
            history["aux_loss"].append(step_aux)
        history["tokens_seen"].append(tokens_seen)
        bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr:.2e}")
        bar.update(1)

        if step % args.eval_interval == 0 or step == end_step:
            val_loss = evaluate_loss(model, val, args.seed + 1, args.eval_iters, device, autocast_dtype)
            history["val_step"].append(step)
            history["val_loss"].append(val_loss)
            bar.write(f"step {step}/{total_steps}: train loss {step_loss:.3f}, val loss {val_loss:.3f}, lr {lr:.2e}")
            save()
    bar.close()
    elapsed = time.perf_counter() - start

    plot_path = plot_losses(history, out_dir / "loss.png")
    sample = _sample(unwrap_model(model), tokenizer, args, device)
    return {"history": history, "checkpoint": checkpoint_path, "plot": plot_path, "sample": sample,
            "seconds": elapsed, "steps": step, "tokens_seen": tokens_seen}


def _sample(model, tokenizer, args: PretrainArgs, device) -> str:
    model.eval()
    idx = text_to_token_ids(args.sample_prompt, tokenizer).to(device)
    out = generate(model, idx, args.sample_tokens, model.pos_emb.num_embeddings)  # greedy: no RNG is used
    return token_ids_to_text(out.cpu(), tokenizer)
