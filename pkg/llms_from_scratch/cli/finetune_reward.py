"""``llms-from-scratch finetune-reward``: a Bradley-Terry reward model on chapter 7's preference pairs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import UsageError, positive_float, positive_int, random_seed

# chapter 4's GPTModel at two small sizes, trained from random weights (the GPT-2 tokenizer)
GPT_SIZES = {
    "gpt-small": {"emb_dim": 256, "n_heads": 4, "n_layers": 4},
    "gpt-tiny": {"emb_dim": 32, "n_heads": 2, "n_layers": 2},
}
MODELS = ("smollm2-135m-instruct", *GPT_SIZES)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune-reward", help="train a Bradley-Terry reward model on chapter 7's preference pairs",
        description="Train a scalar reward head (and optionally the top blocks) of a decoder so that the chosen "
                    "answer of each preference pair scores higher than the rejected one. Checkpoints are saved in "
                    "OUT every --checkpoint-every steps; --resume continues from the last one.")
    parser.add_argument("--out", default="reward-model", help="folder for checkpoint, history, weights and plot")
    parser.add_argument("--model", default="smollm2-135m-instruct", choices=MODELS,
                        help="the pretrained SmolLM2, or chapter 4's GPTModel from random weights")
    parser.add_argument("--data", default=None, help="a preference JSON file (default: the chapter 7 data set)")
    parser.add_argument("--trainable", default="last_2",
                        help="head, last_N (the top N blocks, final norm and head) or all")
    parser.add_argument("--epochs", type=positive_int, default=4)
    parser.add_argument("--lr", type=positive_float, default=3e-4)
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--margin", type=float, default=0.0, help="ask for r_chosen - r_rejected >= margin")
    parser.add_argument("--centering", type=float, default=0.0, help="weight of the mean (r_chosen + r_rejected)^2")
    parser.add_argument("--prompt-style", default="phi3",
                        help="alpaca or phi3: how instruction and input are formatted before the answer (chapter 7)")
    parser.add_argument("--max-length", type=positive_int, default=256, help="keep the last this many tokens")
    parser.add_argument("--train-examples", type=positive_int, default=None, help="use only this many training pairs")
    parser.add_argument("--held-out-frac", type=float, default=0.2, help="share of pairs held out (fixed by --seed)")
    parser.add_argument("--eval-freq", type=positive_int, default=20, help="steps between validation records")
    parser.add_argument("--checkpoint-every", type=positive_int, default=20)
    parser.add_argument("--seed", type=random_seed, default=123)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pth")
    parser.add_argument("--stop-at-step", type=positive_int, default=None,
                        help="end this session at this step (a checkpoint is saved; --resume continues)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)


def _settings(args) -> dict:
    keys = ("model", "data", "trainable", "epochs", "lr", "batch_size", "margin", "centering", "prompt_style", "max_length",
            "train_examples", "held_out_frac", "eval_freq", "seed")
    return {key: getattr(args, key) for key in keys}


def _build(name: str):
    """(body, tokenizer) for a model name."""
    import torch

    if name in GPT_SIZES:
        from ..ch04 import GPTModel
        from ..data import gpt2_encoding

        cfg = {"vocab_size": 50257, "context_length": 256, "drop_rate": 0.0, "qkv_bias": False, **GPT_SIZES[name]}
        return GPTModel(cfg), gpt2_encoding()
    from ..models import load_pretrained

    return load_pretrained(name, dtype=torch.float32)


def _run(args) -> int:
    import torch

    from ..alignment.reward import (
        RewardModel,
        RewardPairDataset,
        evaluate_reward_model,
        precompute_trunk,
        reward_collate,
        set_trainable,
        split_preference_data,
        train_reward_model,
    )
    from ..ch07 import PROMPT_STYLES
    from ..data import fetch

    out = Path(args.out)
    checkpoint = out / "checkpoint.pth"
    settings = _settings(args)
    if checkpoint.exists() and not args.resume:
        raise UsageError(f"{checkpoint} exists; pass --resume to continue it, or choose another --out")
    if args.resume:
        if not checkpoint.exists():
            raise UsageError(f"nothing to resume: {checkpoint} does not exist; drop --resume to start a new run")
        saved = json.loads((out / "settings.json").read_text())
        if saved != settings:
            changed = sorted(k for k in settings if saved.get(k) != settings[k])
            raise UsageError(f"--resume needs the options of the first run; changed: {', '.join(changed)}")
    if not re.fullmatch(r"head|all|last_[1-9]\d*", args.trainable):
        raise UsageError(f"--trainable must be head, all or last_N (N blocks), got {args.trainable!r}")
    if args.prompt_style not in PROMPT_STYLES:
        raise UsageError(f"--prompt-style must be one of {', '.join(PROMPT_STYLES)}, got {args.prompt_style!r}")
    if not 0 < args.held_out_frac < 1:
        raise UsageError(f"--held-out-frac must be between 0 and 1, got {args.held_out_frac}")

    data_path = Path(args.data) if args.data else fetch("instruction-data-with-preference")
    data = json.loads(Path(data_path).read_text(encoding="utf-8"))
    train_data, held_out = split_preference_data(data, args.held_out_frac, args.seed)
    train_data = train_data[:args.train_examples]
    if len(train_data) < args.batch_size:
        raise UsageError(f"{len(train_data)} training pairs is fewer than one batch (--batch-size {args.batch_size})")

    torch.manual_seed(args.seed)
    body, tokenizer = _build(args.model)
    model = RewardModel(body)
    try:
        start_block = set_trainable(model, args.trainable)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    train_set = RewardPairDataset(train_data, tokenizer, args.prompt_style, args.max_length)
    val_set = RewardPairDataset(held_out, tokenizer, args.prompt_style, args.max_length)
    if start_block > 0:  # the frozen blocks give the same hidden states every epoch: compute them once
        train_set = precompute_trunk(model, train_set, start_block, progress=not args.quiet)
        val_set = precompute_trunk(model, val_set, start_block, progress=not args.quiet)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.01)

    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.json").write_text(json.dumps(settings, indent=2))
    history = train_reward_model(
        model, train_set, val_set, reward_collate, optimizer, num_epochs=args.epochs, batch_size=args.batch_size,
        margin=args.margin, centering=args.centering, eval_freq=args.eval_freq, seed=args.seed,
        checkpoint_path=checkpoint, checkpoint_every=args.checkpoint_every, max_steps=args.stop_at_step,
        progress=not args.quiet)
    total = args.epochs * (len(train_set) // args.batch_size)
    if history["step"] and history["step"][-1] == total:
        final = evaluate_reward_model(model, val_set, reward_collate, args.batch_size, args.margin, args.centering)
        torch.save({name: p.detach() for name, p in model.named_parameters() if p.requires_grad},
                   out / "reward-model.pth")
        (out / "history.json").write_text(json.dumps(history, indent=2))
        _plot(history, out / "reward-training.png")
        results = {"model": args.model, "trainable": args.trainable, "train_pairs": len(train_set),
                   "held_out_pairs": len(val_set), "steps": total, "held_out_accuracy": final["accuracy"],
                   "held_out_loss": final["loss"], "out": str(out)}
    else:
        results = {"stopped_at_step": history["step"][-1] if history["step"] else None, "of": total,
                   "resume_with": "--resume"}
    print(json.dumps(results, indent=2))
    return 0


def _plot(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a file only: no window, works without a display
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
    for ax, key, label in ((ax1, "loss", "Bradley-Terry loss"), (ax2, "accuracy", "pairwise accuracy")):
        ax.plot(history["step"], history[f"train_{key}"], label="training")
        ax.plot(history["step"], history[f"val_{key}"], linestyle="-.", label="held out")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
