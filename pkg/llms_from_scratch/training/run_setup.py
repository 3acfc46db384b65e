"""What the one-process and the distributed pretraining loops share: the model configuration and the checks on
the settings, the device, mixed precision, the random-number state, the checkpoint a run may resume, and the loss
plot."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from ..ch04 import GPT_CONFIG_124M
from ..device import pick_device
from ..gpt2_weights import GPT2_MODEL_CONFIGS
from .checkpoints import CheckpointError, read_checkpoint
from .pretrain_args import PretrainArgs, ResumeError, check_paths, check_values
from .token_file import TokenWindows, source_differences

TOKENS_NAME = "tokens.bin"
# what a pretraining checkpoint must hold to be resumed
_RESUME_KEYS = ("model", "optimizer", "config", "args", "corpus", "data", "rng", "step", "tokens_seen", "history")


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return pick_device(verbose=False)[0]
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is available here; use --device auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"--device {name}: Apple's MPS is not available here; use --device auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {name}: pretraining runs on cpu, cuda or mps")
    return device


def check_args(args: PretrainArgs) -> None:
    """Refuse impossible settings with one message naming the option and the fix, before anything heavy runs.

    The values (:func:`.pretrain_args.check_values`), the model's configuration, whether the device exists here,
    then ``data`` and the checkpoint to resume (:func:`.pretrain_args.check_paths`). Raises ``ValueError``,
    ``FileNotFoundError`` or :class:`ResumeError`.
    """
    check_values(args)
    model_config(args)
    resolve_device(args.device)
    check_paths(args)


def choose_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None  # fp32 on CPUs keeps runs reproducible and comparable with the book


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _describe_config(cfg: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{key}={cfg.get(key)}" for key in keys)


def checkpoint_to_resume(path: Path, cfg: dict[str, Any], args: PretrainArgs, tokenizer) -> dict[str, Any]:
    """The checkpoint at ``path``, verified intact and checked against this run's model, split and data."""
    ckpt = read_checkpoint(path, map_location="cpu", require_checksum=True)
    missing = [key for key in _RESUME_KEYS if not isinstance(ckpt, dict) or key not in ckpt]
    if missing:
        raise CheckpointError(f"{path} is not a checkpoint written by pretrain (it lacks {', '.join(missing)}); "
                              "start without --resume or pass another --out-dir")
    fix = "or start a new run in another --out-dir without --resume"
    if ckpt["config"] != cfg:
        keys = sorted(key for key in cfg.keys() | ckpt["config"].keys() if ckpt["config"].get(key) != cfg.get(key))
        raise ResumeError(f"cannot resume from {path}: it was trained with {_describe_config(ckpt['config'], keys)}, "
                          f"this run asks for {_describe_config(cfg, keys)}; pass the same model options as the "
                          f"original run, {fix}")
    saved_strategy = ckpt["args"].get("strategy", "single")
    if (saved_strategy == "single") != (args.strategy == "single"):
        raise ResumeError(f"cannot resume from {path}: it was written with --strategy {saved_strategy}, this run asks "
                          f"for --strategy {args.strategy}; one process and several keep their data position and "
                          f"optimizer differently (ddp and fsdp resume each other's checkpoints), {fix}")
    if ckpt["args"].get("val_fraction") != args.val_fraction:
        raise ResumeError(f"cannot resume from {path}: it held out --val-fraction {ckpt['args'].get('val_fraction')}, "
                          f"this run asks for {args.val_fraction}; pass the original value, {fix}")
    why = source_differences(ckpt["corpus"], args.data, tokenizer)
    if why is not None:
        raise ResumeError(f"cannot resume from {path}: its training data differs from --data {args.data}: {why}; "
                          f"resume with the data the run started with, unchanged, {fix}")
    return ckpt


def plot_losses(history: dict[str, list], path: Path) -> Path | None:
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


@torch.no_grad()
def evaluate_loss(model, val: TokenWindows, seed: int, iters: int, device, autocast_dtype) -> float:
    """Mean loss over the same ``iters`` validation batches every time (the sampler is re-seeded); under torchrun
    every rank evaluates the same batches."""
    model.eval()
    val.generator.manual_seed(seed)
    total = 0.0
    for _ in range(iters):
        x, y = val.next_batch()
        with autocast(device, autocast_dtype):
            logits = model(x.to(device))
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.to(device).flatten()).item()
    model.train()
    return total / iters
