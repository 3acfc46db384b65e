"""Pilot runs that chose the fourth SmolLM2 attempt's GRPO learning rate, on training problems only.

The third attempt ran GRPO at learning rate 2e-4 and its held-out score fell. Before the fourth attempt's full
run, this script trains the same warmed-up model with GRPO at a few smaller learning rates and measures each run
on *validation* problems: `add` and `sub` problems from the training split that GRPO never trains on. The
held-out (test) problems play no part, so the fourth attempt's claims stay untouched by the choice.

    python ch07/09_grpo/smollm2_lr_pilot.py --learning-rates 2e-5 6e-5 --steps 60

The warm-up is the notebooks' (12 SFT steps of 16 problems at 3e-4 on the top 4 blocks). Each learning rate
then starts from the warmed-up weights; its run prints greedy pass@1 and sampled pass@1 (4 replies at
temperature 0.7) on the 60 validation problems every 20 steps, and the table at the end compares them.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from llms_from_scratch.alignment.grpo import GRPOConfig
from llms_from_scratch.alignment.word_problems import exact_answer_reward, make_problems
from llms_from_scratch.alignment.word_problems_grpo import (
    WORKED_INSTRUCTION,
    answer_format_sft,
    chat_prompts,
    evaluate_word_problems,
    train_grpo_cached,
    train_top_blocks,
)
from llms_from_scratch.models.pretrained import load_pretrained

TEMPLATES = ("add", "sub")
MAX_NEW_TOKENS, TEMPERATURE = 16, 0.7


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[2e-5, 6e-5],
                        help="one GRPO run from the warmed-up weights per learning rate (default: 2e-5 6e-5)")
    parser.add_argument("--steps", type=int, default=60, help="GRPO steps of 4 problems x 8 replies per run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # the warm-up sees the notebooks' SFT half of the training pool; GRPO and validation draw add/sub problems
    # of the training split with another seed, and validation keeps the first 60 of them for itself
    sft_problems = make_problems(1000, "train", seed=1)[:500]
    pool = make_problems(600, "train", seed=11, templates=TEMPLATES)
    validation, grpo_problems = pool[:60], pool[60:]

    model, tokenizer = load_pretrained("smollm2-135m-instruct")
    eos = tokenizer.eos_ids[0]
    train_top_blocks(model, 4)
    answer_format_sft(model, tokenizer, sft_problems, steps=12, batch_size=16, learning_rate=3e-4, seed=0)
    warmed = copy.deepcopy(model.state_dict())

    def evaluate(policy: torch.nn.Module) -> dict[str, float]:
        metrics = evaluate_word_problems(policy, tokenizer, validation, max_new_tokens=MAX_NEW_TOKENS,
                                         num_samples=4, temperature=TEMPERATURE, seed=5,
                                         instruction=WORKED_INSTRUCTION)
        return {"greedy": metrics["greedy_pass@1"], "sampled": metrics["sampled_pass@1"]}

    prompts = chat_prompts(tokenizer, grpo_problems, WORKED_INSTRUCTION)
    reward_fn = exact_answer_reward(grpo_problems, lambda ids: tokenizer.decode(ids, skip_special=True))
    rows = []
    for lr in args.learning_rates:
        model.load_state_dict(warmed)
        config = GRPOConfig(steps=args.steps, prompts_per_step=4, group_size=8, learning_rate=lr, warmup_steps=2,
                            max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE, beta=0.0, eval_interval=20,
                            seed=7)
        start = time.perf_counter()
        history = train_grpo_cached(model, None, prompts, reward_fn, config, eos_token_id=eos, pad_token_id=eos,
                                    evaluate=evaluate)
        evals = history["eval"]
        greedy, sampled = ([round(x, 3) for x in evals[key]] for key in ("greedy", "sampled"))
        print(f"lr {lr:g}: {time.perf_counter() - start:.0f} s; validation greedy {greedy}, sampled {sampled} "
              f"at steps {history['eval_step']}")
        rows.append((lr, evals["greedy"][0], evals["greedy"][-1], evals["sampled"][0], evals["sampled"][-1],
                     sum(history["reward"]) / len(history["reward"])))
    print("| learning rate | validation greedy pass@1 | validation sampled pass@1 | mean batch reward |")
    print("| --- | --- | --- | --- |")
    for lr, g0, g1, s0, s1, reward in rows:
        print(f"| {lr:g} | {g0:.3f} -> {g1:.3f} | {s0:.3f} -> {s1:.3f} | {reward:.3f} |")


if __name__ == "__main__":
    main()
