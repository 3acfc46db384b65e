"""What a pretraining run is asked to do, and the checks that need neither torch nor the corpus's contents.

The command line runs :func:`check_values` and :func:`check_paths` before it imports torch, so a wrong value, a
missing ``--data`` or a ``--resume`` without a checkpoint is reported at once; :func:`.pretrain.check_args` adds
the checks that need torch (the device).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..gpt2_sizes import GPT2_MODEL_CONFIGS
from .corpus import corpus_files

__all__ = ["CHECKPOINT_NAME", "MOE_BALANCING", "STRATEGIES", "PretrainArgs", "ResumeError", "check_paths",
           "check_values", "default_expert_hidden_dim", "moe_model_keys"]

CHECKPOINT_NAME = "checkpoint.pth"
STRATEGIES = ("single", "ddp", "fsdp")
MOE_BALANCING = ("none", "aux", "bias")  # training.moe_gpt describes each
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


class ResumeError(ValueError):
    """``resume`` asks to continue from a checkpoint that does not fit this run (none, other model or data)."""


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
    strategy: str = "single"  # "single" process, or under torchrun "ddp" or "fsdp" (training.distributed)
    # mixture of experts (training.moe_gpt): every block's feed-forward becomes moe_experts SwiGLU experts
    moe: bool = False
    moe_experts: int = 8
    moe_top_k: int = 2
    moe_hidden_dim: int | None = None  # default: top_k active experts hold as many weights as the dense MLP
    moe_balance: str = "aux"  # "none", "aux" (load-balancing loss) or "bias" (DeepSeek-V3's bias step)
    moe_aux_weight: float = 0.01
    moe_bias_rate: float = 0.001


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def _finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def check_values(args: PretrainArgs) -> None:
    """Refuse numbers and names that cannot work, with a message naming the option (``ValueError``)."""
    if (args.steps is None) == (args.epochs is None):
        raise ValueError("give exactly one of steps or epochs")
    at_least_one = ["steps", "batch_size", "grad_accum_steps", "eval_interval", "eval_iters", "context_length",
                    "emb_dim", "n_layers", "n_heads", "stop_at_step"]
    for field in at_least_one:
        value = getattr(args, field)
        if value is not None and value < 1:
            raise ValueError(f"{_option(field)} must be at least 1, got {value}")
    for field in ("warmup_steps", "sample_tokens"):
        value = getattr(args, field)
        if value is not None and value < 0:
            raise ValueError(f"{_option(field)} must be at least 0, got {value}")
    if args.epochs is not None and not (_finite(args.epochs) and args.epochs > 0):
        raise ValueError(f"--epochs must be a positive number, got {args.epochs}")
    if not (_finite(args.learning_rate) and args.learning_rate > 0):
        raise ValueError(f"--learning-rate must be a positive number, got {args.learning_rate}")
    for field in ("initial_lr", "min_lr", "weight_decay"):
        value = getattr(args, field)
        if not (_finite(value) and value >= 0):
            raise ValueError(f"{_option(field)} must be a number of at least 0, got {value}")
    if args.max_norm is not None and not (_finite(args.max_norm) and args.max_norm > 0):
        raise ValueError(f"--max-norm must be a positive number (0 on the command line turns clipping off), "
                         f"got {args.max_norm}")
    if not (_finite(args.drop_rate) and 0 <= args.drop_rate < 1):
        raise ValueError(f"--drop-rate must be in [0, 1), got {args.drop_rate}")
    if not (_finite(args.val_fraction) and 0 < args.val_fraction < 1):
        raise ValueError(f"--val-fraction must be between 0 and 1 (both excluded), got {args.val_fraction}")
    if not 0 <= args.seed < 2**63 - 1:  # the validation sampler uses seed + 1; torch takes 64-bit seeds
        raise ValueError(f"--seed must be in [0, 2**63 - 1), got {args.seed}")
    if args.precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {args.precision!r}")
    if args.model not in GPT2_MODEL_CONFIGS:
        raise ValueError(f"unknown model size {args.model!r}; choose one of {', '.join(GPT2_MODEL_CONFIGS)}")
    emb_dim = args.emb_dim if args.emb_dim is not None else GPT2_MODEL_CONFIGS[args.model]["emb_dim"]
    n_heads = args.n_heads if args.n_heads is not None else GPT2_MODEL_CONFIGS[args.model]["n_heads"]
    if emb_dim % n_heads != 0:
        raise ValueError(f"emb_dim={emb_dim} must be divisible by n_heads={n_heads}")
    if args.strategy not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {args.strategy!r}")
    world_size = os.environ.get("WORLD_SIZE", "1")
    if args.strategy == "single" and world_size.isdigit() and int(world_size) > 1:
        raise ValueError(f"--strategy single under torchrun would train {world_size} separate copies into one "
                         "folder; pass --strategy ddp or fsdp")
    if args.strategy != "single" and args.compile:
        raise ValueError(f"--compile does not work with --strategy {args.strategy} yet; leave out --compile")
    if args.strategy != "single" and not re.fullmatch(r"auto|cpu|cuda", args.device):
        raise ValueError(f"--device {args.device}: with --strategy {args.strategy} each process takes the GPU of its "
                         "local rank; use --device auto, cuda or cpu")
    if not _DEVICE.fullmatch(args.device):
        raise ValueError(f"--device {args.device!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    if args.moe:
        _check_moe(args)


def _check_moe(args: PretrainArgs) -> None:
    if args.moe_experts < 2:
        raise ValueError(f"--moe-experts must be at least 2, got {args.moe_experts}")
    if not 1 <= args.moe_top_k <= args.moe_experts:
        raise ValueError(f"--moe-top-k must be between 1 and --moe-experts ({args.moe_experts}), got {args.moe_top_k}")
    if args.moe_hidden_dim is not None and args.moe_hidden_dim < 1:
        raise ValueError(f"--moe-hidden-dim must be at least 1, got {args.moe_hidden_dim}")
    if args.moe_balance not in MOE_BALANCING:
        raise ValueError(f"--moe-balance must be one of {', '.join(MOE_BALANCING)}, got {args.moe_balance!r}")
    for field in ("moe_aux_weight", "moe_bias_rate"):
        value = getattr(args, field)
        if not (_finite(value) and value >= 0):
            raise ValueError(f"{_option(field)} must be a number of at least 0, got {value}")
    if args.strategy != "single":
        raise ValueError(f"--moe works with --strategy single only; leave out --strategy {args.strategy} or --moe")
    if args.compile:
        raise ValueError("--compile is not supported with --moe (each expert's tokens are chosen at run time); "
                         "leave out --compile")


def default_expert_hidden_dim(emb_dim: int, top_k: int) -> int:
    """An expert width whose ``top_k`` active SwiGLU experts hold as many weights as chapter 4's 4x GELU MLP.

    The MLP has ``2 * emb_dim * 4 * emb_dim`` weights, one SwiGLU expert ``3 * emb_dim * hidden_dim``.
    """
    return max(1, round(8 * emb_dim / (3 * top_k)))


def moe_model_keys(args: PretrainArgs, emb_dim: int) -> dict:
    """The MoE entries of the model configuration (``training.moe_gpt``), the expert width resolved; none for a
    dense run, so checkpoints of dense runs keep the configuration they always had."""
    if not args.moe:
        return {}
    hidden = args.moe_hidden_dim or default_expert_hidden_dim(emb_dim, args.moe_top_k)
    return {"moe_experts": args.moe_experts, "moe_top_k": args.moe_top_k, "moe_hidden_dim": hidden,
            "moe_balance": args.moe_balance, "moe_aux_weight": args.moe_aux_weight,
            "moe_bias_rate": args.moe_bias_rate}


def check_paths(args: PretrainArgs) -> None:
    """``data`` must hold text (``FileNotFoundError``); ``resume`` needs a checkpoint (:class:`ResumeError`)."""
    corpus_files(args.data)
    checkpoint_path = Path(args.out_dir) / CHECKPOINT_NAME
    if args.resume and not checkpoint_path.is_file():
        raise ResumeError(f"--resume: no checkpoint at {checkpoint_path}; start without --resume first")
