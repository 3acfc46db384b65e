"""Our GRPO (``llms_from_scratch.alignment.grpo``) against TRL's ``GRPOTrainer`` on the addition task, seed by seed.

Both start from the notebook's SFT model (chapter 4's GPT, trained by ``load_or_train_sft`` until half the
validation problems are right), use the exact-match reward and see the same number of sampled completions. TRL
trains a ``transformers`` copy of that model (``alignment.hf_gpt2``; the logits are checked equal before
training), which is copied back into a ``GPTModel`` afterwards, so both results are measured by the same
evaluation code on the same 500 held-out problems.

This is a reference tool, not part of the package: TRL is not a dependency, so it runs in an environment of its
own, with the package on the path::

    python -m venv trlenv-grpo && trlenv-grpo/bin/pip install torch==2.13.0 trl tiktoken matplotlib
    OMP_NUM_THREADS=1 PYTHONPATH=pkg trlenv-grpo/bin/python ch07/09_grpo/compare_trl_grpo.py --seeds 1 2 3
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

from llms_from_scratch.alignment.addition import (
    AdditionTokenizer,
    addition_split,
    evaluate_addition,
    exact_match_reward,
    prompt_text,
    target_ids,
    tiny_gpt_config,
)
from llms_from_scratch.alignment.addition_recipe import AdditionRecipe, load_or_train_sft
from llms_from_scratch.alignment.grpo import train_grpo
from llms_from_scratch.alignment.hf_gpt2 import hf_addition_tokenizer, hf_gpt2_model, load_hf_state_into_gpt
from llms_from_scratch.alignment.seed_runs import comparison_parser, print_runs_table, run_seeds


def trl_reward(tokenizer: AdditionTokenizer):
    """The exact-match reward as TRL calls a reward function: the completion's token ids (end token included)
    against the answer of the dataset row's ``a`` and ``b``."""
    def exact_match(prompts, completions, completion_ids, a, b, **_ignored) -> list[float]:
        return [1.0 if ids == target_ids(tokenizer, (x, y)) else 0.0 for ids, x, y in zip(completion_ids, a, b)]

    return exact_match


def check_reward_agrees(tokenizer: AdditionTokenizer, problems) -> None:
    """The TRL-side reward gives the package's ``exact_match_reward`` on right, wrong, and unfinished answers."""
    ours, theirs = exact_match_reward(tokenizer, problems), trl_reward(tokenizer)
    eos = tokenizer.eos_token_id
    for i, p in enumerate(problems):
        for completion in (target_ids(tokenizer, p), target_ids(tokenizer, p)[:-1], [0, eos], [1, 2, 3, 4]):
            if theirs([prompt_text(p)], [""], [completion], [p[0]], [p[1]]) != [ours(i, completion)]:
                raise AssertionError(f"reward mismatch on {prompt_text(p)} {completion}")


# ----------------------------------------------------------------------------------------------- the runs
def run_ours(sft: nn.Module, recipe: AdditionRecipe, split, tokenizer: AdditionTokenizer, seed: int) -> dict:
    config = dataclasses.replace(recipe.grpo, seed=seed)
    torch.manual_seed(seed)
    model = copy.deepcopy(sft)
    start = time.perf_counter()
    history = train_grpo(model, None, [tokenizer.encode(prompt_text(p)) for p in split.train],
                         exact_match_reward(tokenizer, split.train), config,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, progress=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rewards": history["reward"], "zero_variance": history["zero_variance"],
            "after": evaluate_addition(model, tokenizer, split.test, num_samples=recipe.eval_samples,
                                       seed=recipe.seed)}


def trl_config(recipe: AdditionRecipe, seed: int, out_dir: str):
    """TRL's settings, each set to ours (see README: the differences that remain)."""
    from trl import GRPOConfig

    c = recipe.grpo
    if c.beta != 0 or c.dr_grpo or c.warmup_steps:
        raise ValueError("this comparison maps only the notebook's settings: beta=0, dr_grpo=False, no warm-up")
    completions = c.prompts_per_step * c.group_size
    return GRPOConfig(
        output_dir=out_dir, seed=seed, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
        use_cpu=True, bf16=False,
        num_generations=c.group_size,
        per_device_train_batch_size=completions,  # one optimizer step sees the whole batch of rollouts, like ours
        gradient_accumulation_steps=1, steps_per_generation=1,
        num_iterations=c.updates_per_batch,  # mu: optimizer steps on each batch of rollouts
        max_steps=c.steps * c.updates_per_batch,  # TRL counts optimizer steps; ours counts batches of rollouts
        learning_rate=c.learning_rate, lr_scheduler_type="constant", warmup_steps=0, weight_decay=c.weight_decay,
        max_grad_norm=c.max_grad_norm, beta=c.beta, epsilon=c.clip_eps,
        loss_type="grpo",  # each completion's token mean, then the mean over completions: ours without dr_grpo
        scale_rewards="group",  # divide by the group's standard deviation
        temperature=c.temperature, top_p=1.0, top_k=0, max_completion_length=c.max_new_tokens,
        disable_dropout=True, log_completions=False,
    )


def run_trl(sft: nn.Module, cfg: dict, recipe: AdditionRecipe, split, tokenizer: AdditionTokenizer,
            seed: int) -> dict:
    import transformers
    from datasets import Dataset
    from trl import GRPOTrainer

    transformers.set_seed(seed)
    policy = hf_gpt2_model(sft, cfg, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    probe = torch.tensor([tokenizer.encode(prompt_text(p)) for p in split.val[:32]])
    with torch.no_grad():
        gap = (policy(probe).logits - sft.eval()(probe)).abs().max().item()
    if gap > 1e-4:
        raise AssertionError(f"the transformers copy differs from the SFT model by {gap:.2e} in the logits")
    train = Dataset.from_dict({"prompt": [prompt_text(p) for p in split.train],
                               "a": [p[0] for p in split.train], "b": [p[1] for p in split.train]})
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = GRPOTrainer(model=policy, reward_funcs=[trl_reward(tokenizer)], args=trl_config(recipe, seed, out_dir),
                              train_dataset=train, processing_class=hf_addition_tokenizer(tokenizer))
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    # TRL logs every optimizer step, the reward only at the first of the updates_per_batch steps on a batch
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    model = load_hf_state_into_gpt(copy.deepcopy(sft), trainer.model.state_dict())
    return {"seconds": seconds, "rewards": [entry["reward"] for entry in logs],
            "zero_variance": [entry.get("frac_reward_zero_std", float("nan")) for entry in logs],
            "after": evaluate_addition(model, tokenizer, split.test, num_samples=recipe.eval_samples,
                                       seed=recipe.seed)}


# ----------------------------------------------------------------------------------------------- the table
def main() -> None:
    parser = comparison_parser(__doc__.split("\n")[0], "GRPO", 300, "compare-trl-grpo")
    args = parser.parse_args()
    out = Path(args.out)
    if args.table:
        print_runs_table(out, "GRPO", ('zero-var groups', 'zero_variance'))
        return

    import transformers
    import trl

    recipe = AdditionRecipe()
    if args.steps is not None:
        recipe.grpo = dataclasses.replace(recipe.grpo, steps=args.steps)
    tokenizer = AdditionTokenizer()
    split = addition_split(recipe.num_test, recipe.num_val, seed=recipe.seed)
    out.mkdir(parents=True, exist_ok=True)
    sft, record = load_or_train_sft(recipe, tokenizer, split, out, resume=True)
    check_reward_agrees(tokenizer, split.train[:50])
    cfg = tiny_gpt_config(tokenizer, emb_dim=recipe.emb_dim, n_layers=recipe.n_layers)
    versions = f"trl {trl.__version__}, transformers {transformers.__version__}, torch {torch.__version__}"
    print(f"{versions}; SFT: {record['steps']} steps, test greedy pass@1 {record['test']['greedy_pass@1']:.3f}")
    runners = {"ours": lambda s: run_ours(sft, recipe, split, tokenizer, s),
               "trl": lambda s: run_trl(sft, cfg, recipe, split, tokenizer, s)}
    run_seeds(out, runners, args.seeds, args.only, versions={"ours": f"torch {torch.__version__}", "trl": versions},
              samples=recipe.grpo.steps * recipe.grpo.prompts_per_step * recipe.grpo.group_size,
              hyperparameters=dataclasses.asdict(recipe.grpo), before=record["test"])
    print_runs_table(out, "GRPO", ('zero-var groups', 'zero_variance'))


if __name__ == "__main__":
    main()
