"""``llms-from-scratch rlhf-grpo``: GRPO on two-digit addition with a tiny GPT, from SFT to pass@k, resumable."""

from __future__ import annotations

from ._addition_args import add_addition_arguments, addition_recipe_fields, print_summary
from .errors import UsageError, positive_float, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "rlhf-grpo", help="GRPO on a verifiable task: a tiny GPT learns 2-digit addition from an exact-match reward",
        description="Supervised fine-tuning of a tiny GPT until it solves part of the validation problems, then "
                    "GRPO with an exact-match reward; greedy and sampled pass@k on held-out problems before and "
                    "after. Checkpoints (sft.pth, grpo.pth) are saved atomically; --resume continues a run. The "
                    "plot grpo.png and results.json are written at the end.")
    parser.add_argument("--out", default="grpo-addition", help="folder for checkpoints, results.json and grpo.png")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoints")
    parser.add_argument("--steps", type=positive_int, default=300, help="GRPO steps")
    parser.add_argument("--stop-at-step", type=positive_int, help="end this session at this step (resume later)")
    parser.add_argument("--prompts-per-step", type=positive_int, default=16)
    parser.add_argument("--group-size", type=positive_int, default=8, help="completions sampled per prompt (G)")
    parser.add_argument("--lr", type=positive_float, default=None, help="GRPO learning rate (default 3e-4)")
    parser.add_argument("--beta", type=float, default=0.0, help="weight of the KL penalty to the SFT model")
    parser.add_argument("--clip-eps", type=positive_float, default=0.2)
    parser.add_argument("--updates-per-batch", type=positive_int, default=2,
                        help="optimizer steps on each batch of rollouts (later ones are clipped)")
    parser.add_argument("--dr-grpo", action="store_true", help="Dr. GRPO: no length or std normalisation")
    parser.add_argument("--eval-interval", type=positive_int, default=25, help="steps between evaluations and saves")
    add_addition_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from dataclasses import replace

    from ..alignment.addition_recipe import AdditionRecipe, default_grpo_config, run_addition_grpo

    fields = addition_recipe_fields(args)
    if args.beta < 0:
        raise UsageError("--beta must be >= 0")
    defaults = default_grpo_config()
    grpo = replace(defaults, steps=args.steps, prompts_per_step=args.prompts_per_step, group_size=args.group_size,
                   learning_rate=args.lr if args.lr is not None else defaults.learning_rate, beta=args.beta,
                   clip_eps=args.clip_eps, dr_grpo=args.dr_grpo, updates_per_batch=args.updates_per_batch,
                   eval_interval=args.eval_interval, seed=args.seed)  # replace() checks the settings again
    recipe = AdditionRecipe(**fields, grpo=grpo)
    results = run_addition_grpo(args.out, recipe, resume=args.resume, stop_at_step=args.stop_at_step,
                                progress=not args.quiet)
    print_summary(results, ("sft_steps", "before", "after", "checkpoint", "plot"))
    return 0
