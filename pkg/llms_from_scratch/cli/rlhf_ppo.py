"""``llms-from-scratch rlhf-ppo``: PPO with a value head on two-digit addition with a tiny GPT, resumable."""

from __future__ import annotations

from ._addition_args import add_addition_arguments, addition_recipe_fields, print_summary
from .errors import UsageError, positive_float, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "rlhf-ppo", help="RLHF with PPO on a verifiable task: a tiny GPT learns 2-digit addition from an exact-match "
                         "reward, with a per-token KL penalty",
        description="Supervised fine-tuning of a tiny GPT until it solves part of the validation problems, then PPO "
                    "(value head, GAE, clipped policy and value losses, per-token KL penalty to the SFT model, a "
                    "penalty for answers without an end token) with an exact-match reward; greedy and sampled pass@k "
                    "on held-out problems before and after. Checkpoints (sft.pth, ppo.pth) are saved atomically; "
                    "--resume continues a run. The plot ppo.png and results.json are written at the end.")
    parser.add_argument("--out", default="ppo-addition", help="folder for checkpoints, results.json and ppo.png")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoints")
    parser.add_argument("--steps", type=positive_int, default=100, help="PPO steps (one batch of rollouts each)")
    parser.add_argument("--stop-at-step", type=positive_int, help="end this session at this step (resume later)")
    parser.add_argument("--prompts-per-step", type=positive_int, default=64, help="rollouts per step")
    parser.add_argument("--ppo-epochs", type=positive_int, default=4, help="passes over each batch of rollouts")
    parser.add_argument("--minibatch-size", type=positive_int, default=32)
    parser.add_argument("--lr", type=positive_float, default=None, help="PPO learning rate (default 1e-4)")
    parser.add_argument("--beta", type=float, default=None, help="weight of the per-token KL penalty (default 0.02)")
    parser.add_argument("--clip-eps", type=positive_float, default=0.2)
    parser.add_argument("--value-clip", type=positive_float, default=0.2)
    parser.add_argument("--vf-coef", type=positive_float, default=0.1, help="weight of the value loss")
    parser.add_argument("--entropy-coef", type=float, default=0.0, help="weight of the entropy bonus")
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--lam", type=float, default=0.95, help="GAE lambda")
    parser.add_argument("--whiten-rewards", action="store_true")
    parser.add_argument("--no-eos-penalty", type=float, default=1.0,
                        help="subtracted from the reward of an answer without the end token")
    parser.add_argument("--eval-interval", type=positive_int, default=10, help="steps between evaluations and saves")
    add_addition_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from dataclasses import replace

    from ..alignment.ppo_addition import PPOAdditionRecipe, default_ppo_config, run_addition_ppo

    fields = addition_recipe_fields(args)
    if (args.beta is not None and args.beta < 0) or args.entropy_coef < 0 or args.no_eos_penalty < 0:
        raise UsageError("--beta, --entropy-coef and --no-eos-penalty must be >= 0")
    defaults = default_ppo_config()
    ppo = replace(defaults, steps=args.steps, prompts_per_step=args.prompts_per_step, ppo_epochs=args.ppo_epochs,
                  minibatch_size=args.minibatch_size,
                  learning_rate=args.lr if args.lr is not None else defaults.learning_rate,
                  beta=args.beta if args.beta is not None else defaults.beta, clip_eps=args.clip_eps,
                  value_clip=args.value_clip, vf_coef=args.vf_coef, entropy_coef=args.entropy_coef,
                  gamma=args.gamma, lam=args.lam, whiten_rewards=args.whiten_rewards,
                  no_eos_penalty=args.no_eos_penalty, eval_interval=args.eval_interval,
                  seed=args.seed)  # replace() checks the settings again
    recipe = PPOAdditionRecipe(**fields, ppo=ppo)
    results = run_addition_ppo(args.out, recipe, resume=args.resume, stop_at_step=args.stop_at_step,
                               progress=not args.quiet)
    keys = ("sft_steps", "before", "after", "samples_before", "samples_after", "checkpoint", "plot")
    print_summary(results, keys)
    return 0
