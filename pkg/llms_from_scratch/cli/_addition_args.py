"""What ``rlhf-grpo`` and ``rlhf-ppo`` share: the addition task's SFT and model options, their checks, and the
JSON summary both print. Not a command itself."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .errors import UsageError, positive_float, positive_int, random_seed


def add_addition_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sft-target", type=positive_float, default=0.5,
                        help="stop SFT once this share of the validation problems is solved (greedy)")
    parser.add_argument("--sft-max-steps", type=positive_int, default=1000)
    parser.add_argument("--emb-dim", type=positive_int, default=96)
    parser.add_argument("--n-layers", type=positive_int, default=3)
    parser.add_argument("--num-test", type=positive_int, default=500, help="held-out test problems")
    parser.add_argument("--eval-samples", type=positive_int, default=8, help="samples per test problem for pass@k")
    parser.add_argument("--seed", type=random_seed, default=123)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def addition_recipe_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe fields both commands set from :func:`add_addition_arguments`'s options (checked here)."""
    if args.sft_target > 1:
        raise UsageError("--sft-target is a share of problems solved: give a number up to 1")
    return {"sft_target": args.sft_target, "sft_max_steps": args.sft_max_steps, "emb_dim": args.emb_dim,
            "n_layers": args.n_layers, "num_test": args.num_test, "eval_samples": args.eval_samples,
            "seed": args.seed}


def print_summary(results: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Print ``results``' ``keys`` as JSON, with a note on how to go on when the run stopped early."""
    summary = {key: results[key] for key in keys if key in results}
    summary["plot"] = str(summary.get("plot", ""))
    if "after" not in results:
        summary["note"] = f"stopped at step {results['history']['step'][-1]}; continue with --resume"
    print(json.dumps(summary, indent=2))
