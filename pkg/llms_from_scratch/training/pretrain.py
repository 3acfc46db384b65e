"""Pretraining a GPTModel on your own text: the chapter 5 loop with Appendix D's refinements, made resumable.

What a run does, in order:

1. tokenize the corpus once into a memory-mapped uint16 file (``tokens.bin`` in the output folder; reused when
   present), and split it into training and validation tokens;
2. each optimizer step draws ``grad_accum_steps`` random batches of windows, averages their gradients, clips the
   gradient norm, and sets the learning rate from the warmup + cosine schedule;
3. every ``eval_interval`` steps it measures the validation loss on fixed batches and saves a checkpoint
   atomically: model, optimizer, random-number state, data position, step, configuration and loss history.

``resume=True`` continues from that checkpoint. On the CPU the continued run is bit-identical to one that was
never interrupted (``tests/training/test_pretrain.py`` checks this), because everything random (dropout and the data
sampler) is restored exactly.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..appendix_d import warmup_cosine_lr
from ..ch04 import GPT_CONFIG_124M, GPTModel
from ..ch05 import generate, text_to_token_ids, token_ids_to_text
from ..device import pick_device
from ..gpt2_weights import GPT2_MODEL_CONFIGS
from .checkpoints import load_model_state_dict, save_checkpoint, unwrap_model
from .fused_loss import gpt_hidden_states, lm_loss
from .token_file import TokenWindows, build_token_file

__all__ = ["PretrainArgs", "model_config", "pretrain"]

CHECKPOINT_NAME = "checkpoint.pth"


@dataclass
class PretrainArgs:
    """Everything a run depends on. The model's size comes from ``model`` (a GPT-2 size), then ``emb_dim``,
    ``n_layers`` and ``n_heads`` where they are set."""

    data: str
    out_dir: str
    model: str = "124M"
    context_length: int = 256
    emb_dim: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    drop_rate: float = 0.1
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 8
    grad_accum_steps: int = 1
    learning_rate: float = 4e-4
    initial_lr: float = 1e-5
    min_lr: float = 1e-5
    warmup_steps: int | None = None  # default: 10% of the steps
    weight_decay: float = 0.1
    max_norm: float | None = 1.0
    precision: str = "auto"  # "auto" (bf16 on GPUs that support it, else fp32), "fp32" or "bf16"
    compile: bool = False
    fused_loss: bool = True  # output head fused into the loss (training.fused_loss); False: logits + F.cross_entropy
    seed: int = 123
    val_fraction: float = 0.1
    eval_interval: int = 50
    eval_iters: int = 5
    device: str = "auto"  # "auto": CUDA, then Apple MPS, then the CPU (device.pick_device)
    resume: bool = False
    stop_at_step: int | None = None  # end this session early; the schedule still follows steps/epochs
    sample_prompt: str = "Every effort moves you"
    sample_tokens: int = 40
    quiet: bool = False


def model_config(args: PretrainArgs) -> dict[str, Any]:
    """The GPTModel configuration: the named GPT-2 size, then the explicit overrides."""
    if args.model not in GPT2_MODEL_CONFIGS:
        raise ValueError(f"unknown model size {args.model!r}; choose one of {', '.join(GPT2_MODEL_CONFIGS)}")
    cfg = {**GPT_CONFIG_124M, **GPT2_MODEL_CONFIGS[args.model], "context_length": args.context_length,
           "drop_rate": args.drop_rate}
    for key in ("emb_dim", "n_layers", "n_heads"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if cfg["emb_dim"] % cfg["n_heads"] != 0:
        raise ValueError(f"emb_dim={cfg['emb_dim']} must be divisible by n_heads={cfg['n_heads']}")
    return cfg


def _device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    return pick_device(verbose=False)[0]


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None  # fp32 on CPUs keeps runs reproducible and comparable with the book


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _total_steps(args: PretrainArgs, train: TokenWindows) -> int:
    if (args.steps is None) == (args.epochs is None):
        raise ValueError("give exactly one of steps or epochs")
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"steps must be >= 1, got {args.steps}")
        return args.steps
    windows_per_step = args.batch_size * args.grad_accum_steps
    return max(1, math.ceil(args.epochs * len(train) / windows_per_step))


@torch.no_grad()
def _evaluate(model, val: TokenWindows, seed: int, iters: int, device, autocast_dtype) -> float:
    """Mean loss over the same ``iters`` validation batches every time (the sampler is re-seeded)."""
    model.eval()
    val.generator.manual_seed(seed)
    total = 0.0
    for _ in range(iters):
        x, y = val.next_batch()
        with _autocast(device, autocast_dtype):
            logits = model(x.to(device))
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.to(device).flatten()).item()
    model.train()
    return total / iters


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def pretrain(args: PretrainArgs) -> dict[str, Any]:
    """Run (or resume) pretraining; returns the loss history and where the checkpoint and plot were written."""
    from tqdm import tqdm

    from ..data import gpt2_encoding

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    tokenizer = gpt2_encoding()
    device = _device(args.device)
    autocast_dtype = _autocast_dtype(args.precision, device)
    cfg = model_config(args)

    token_path = out_dir / "tokens.bin"
    if not token_path.exists():
        build_token_file(args.data, token_path, tokenizer)
    train = TokenWindows(token_path, cfg["context_length"], args.batch_size, "train", args.val_fraction, args.seed)
    val = TokenWindows(token_path, cfg["context_length"], args.batch_size, "val", args.val_fraction, args.seed + 1)
    total_steps = _total_steps(args, train)
    warmup_steps = args.warmup_steps if args.warmup_steps is not None else max(1, total_steps // 10)
    warmup_steps = min(warmup_steps, total_steps - 1)

    torch.manual_seed(args.seed)
    model = GPTModel(cfg).to(device)
    fused = device.type == "cuda"  # the fused AdamW kernel exists on GPUs; on CPUs the default is as fast
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay,
                                  fused=fused)
    history: dict[str, list] = {"step": [], "train_loss": [], "val_step": [], "val_loss": [], "tokens_seen": []}
    step, tokens_seen = 0, 0

    if args.resume:
        if not checkpoint_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint_path}; start without --resume first")
        ckpt = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if ckpt["config"] != cfg:
            raise ValueError(f"the checkpoint was trained with config {ckpt['config']}, but this run asks for "
                             f"{cfg}; pass the same model options as the original run")
        load_model_state_dict(model, ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        train.load_state_dict(ckpt["data"])
        _set_rng_state(ckpt["rng"], device)
        step, tokens_seen, history = ckpt["step"], ckpt["tokens_seen"], ckpt["history"]

    # the fused loss needs the hidden states, not the logits: compile the part of the model that computes them
    hidden_states = functools.partial(gpt_hidden_states, model)
    if args.compile:
        hidden_states = torch.compile(hidden_states)
    train_model = torch.compile(model) if args.compile and not args.fused_loss else model

    def save() -> None:
        save_checkpoint(checkpoint_path, model, optimizer, step=step, tokens_seen=tokens_seen, config=cfg,
                        args=asdict(args), rng=_rng_state(device),
                        data=train.state_dict(), history=history)

    model.train()
    start = time.perf_counter()
    bar = tqdm(total=total_steps, initial=step, desc="pretrain", unit="step", disable=args.quiet)
    end_step = total_steps if args.stop_at_step is None else min(args.stop_at_step, total_steps)
    while step < end_step:
        lr = warmup_cosine_lr(step, warmup_steps, total_steps, args.learning_rate, args.initial_lr, args.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(args.grad_accum_steps):
            x, y = train.next_batch()
            x, y = x.to(device), y.to(device)
            with _autocast(device, autocast_dtype):
                if args.fused_loss:  # the same mean cross-entropy, without the full logits matrix
                    loss = lm_loss(model, x, y, hidden_states=hidden_states)
                else:
                    logits = train_model(x)
                    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
            (loss / args.grad_accum_steps).backward()  # the mean over micro-batches, as one large batch gives
            step_loss += loss.item() / args.grad_accum_steps
            tokens_seen += x.numel()
        if args.max_norm is not None and step >= warmup_steps:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=args.max_norm)
        optimizer.step()
        step += 1
        history["step"].append(step)
        history["train_loss"].append(step_loss)
        history["tokens_seen"].append(tokens_seen)
        bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr:.2e}")
        bar.update(1)

        if step % args.eval_interval == 0 or step == end_step:
            val_loss = _evaluate(model, val, args.seed + 1, args.eval_iters, device, autocast_dtype)
            history["val_step"].append(step)
            history["val_loss"].append(val_loss)
            bar.write(f"step {step}/{total_steps}: train loss {step_loss:.3f}, val loss {val_loss:.3f}, lr {lr:.2e}")
            save()
    bar.close()
    elapsed = time.perf_counter() - start

    plot_path = _plot(history, out_dir / "loss.png")
    sample = _sample(unwrap_model(model), tokenizer, args, device)
    return {"history": history, "checkpoint": checkpoint_path, "plot": plot_path, "sample": sample,
            "seconds": elapsed, "steps": step, "tokens_seen": tokens_seen}


def _plot(history: dict[str, list], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; no window
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(history["step"], history["train_loss"], label="Training loss", alpha=0.8)
    ax.plot(history["val_step"], history["val_loss"], "o-", label="Validation loss")
    ax.set_xlabel("Optimizer step")
    ax.set_ylabel("Loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _sample(model, tokenizer, args: PretrainArgs, device) -> str:
    model.eval()
    idx = text_to_token_ids(args.sample_prompt, tokenizer).to(device)
    out = generate(model, idx, args.sample_tokens, model.pos_emb.num_embeddings)  # greedy: no RNG is used
    return token_ids_to_text(out.cpu(), tokenizer)
