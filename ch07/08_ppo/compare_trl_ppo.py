"""Our PPO (``llms_from_scratch.alignment.ppo``) against TRL's ``PPOTrainer`` on the addition task, seed by seed.

Both start from the notebook's SFT model (chapter 4's GPT, trained by ``load_or_train_sft`` until half the
validation problems are right) and see the same number of sampled completions. TRL trains a
``transformers`` copy of that model (``alignment.hf_gpt2``; the logits are checked equal before training), which
is copied back into a ``GPTModel`` afterwards, so both results are measured by the same evaluation code on the
same 500 held-out problems.

This is a reference tool, not part of the package: TRL 1.10.0 is the last release with a PPO trainer, so it
runs in an environment of its own, with the package on the path::

    python -m venv trlenv-ppo && trlenv-ppo/bin/pip install torch==2.13.0 trl==1.10.0 tiktoken matplotlib
    OMP_NUM_THREADS=1 PYTHONPATH=pkg trlenv-ppo/bin/python ch07/08_ppo/compare_trl_ppo.py --seeds 1 2 3

``--trl-conventions`` runs ours with some or all of TRL's conventions where the two differ (``all``, or any of
``value``, ``score``, ``whiten``, ``clip``, ``order``; see ``TRL_CONVENTIONS``), to find which difference moves
the result; give it its own ``--out`` folder (copy ``sft.pth`` there to reuse the SFT model) and ``--only ours``.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

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
from llms_from_scratch.alignment.addition_recipe import load_or_train_sft
from llms_from_scratch.alignment.hf_gpt2 import hf_addition_tokenizer, hf_gpt2_model, load_hf_state_into_gpt
from llms_from_scratch.alignment.ppo import PolicyWithValueHead, train_ppo
from llms_from_scratch.alignment.ppo_addition import PPOAdditionRecipe
from llms_from_scratch.alignment.seed_runs import comparison_parser, print_runs_table, run_seeds


# ----------------------------------------------------------------------------------------------- the reward
class _ExactMatchBackbone(nn.Module):
    """What TRL's ``get_reward`` calls as the reward model's backbone: it returns, as the "hidden states", the
    exact-match reward of each row, repeated at every position (TRL reads it at the last real token)."""

    def __init__(self, tokenizer: AdditionTokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.equals = tokenizer.stoi["="]

    def forward(self, input_ids, attention_mask, **_ignored):
        rewards = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            real = [token for token, keep in zip(ids, mask) if keep]
            end = real.index(self.equals) + 1  # the prompt is "a+b="; the completion follows it
            a, b = self.tokenizer.decode(real[:end - 1]).split("+")
            rewards.append(1.0 if real[end:] == target_ids(self.tokenizer, (int(a), int(b))) else 0.0)
        scores = torch.tensor(rewards, device=input_ids.device)[:, None, None].expand(-1, input_ids.shape[1], 1)
        return SimpleNamespace(hidden_states=(scores,))


class ExactMatchRewardModel(nn.Module):
    """The exact-match reward behind the interface TRL's PPO expects of a reward model (a backbone named by
    ``base_model_prefix`` and a ``score`` head)."""

    base_model_prefix = "backbone"

    def __init__(self, tokenizer: AdditionTokenizer) -> None:
        super().__init__()
        self.backbone = _ExactMatchBackbone(tokenizer)
        self.score = nn.Identity()


def check_reward_agrees(tokenizer: AdditionTokenizer, problems) -> None:
    """The TRL-side reward gives the package's ``exact_match_reward`` on right, wrong, and unfinished answers."""
    ours = exact_match_reward(tokenizer, problems)
    model = ExactMatchRewardModel(tokenizer)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    for i, p in enumerate(problems):
        for completion in (target_ids(tokenizer, p), target_ids(tokenizer, p)[:-1], [0, eos], [1, 2, 3, 4]):
            row = tokenizer.encode(prompt_text(p)) + completion + [pad] * (4 - len(completion))
            ids = torch.tensor([row])
            out = model.backbone(input_ids=ids, attention_mask=ids != pad).hidden_states[0]
            if float(out[0, -1, 0]) != ours(i, completion):
                raise AssertionError(f"reward mismatch on {prompt_text(p)} {completion}")


# ----------------------------------------------------------------------------------------------- the runs
# TRL's conventions where ours differs, each as the change to our PPOConfig ("value" is PolicyWithValueHead's)
TRL_CONVENTIONS = {
    "value": {},  # a separate value network: PolicyWithValueHead(..., separate_value=True)
    "score": {"score_after_last": True},  # the score on the first padding slot, with a value learnt there
    "whiten": {"unbiased_whitening": True},  # advantages whitened with the unbiased variance
    "clip": {"max_grad_norm": None},  # no gradient clipping
    "order": {"prompt_order": "epochs"},  # shuffle the problems once, walk through them
}


def with_trl_conventions(recipe: PPOAdditionRecipe, names: list[str]) -> bool:
    """Set ``recipe.ppo`` to TRL's conventions ``names``; returns whether the value network is separate."""
    for name in names:
        recipe.ppo = dataclasses.replace(recipe.ppo, **TRL_CONVENTIONS[name])
    return "value" in names


def run_ours(sft: nn.Module, recipe: PPOAdditionRecipe, split, tokenizer: AdditionTokenizer, seed: int,
             separate_value: bool = False) -> dict:
    config = dataclasses.replace(recipe.ppo, seed=seed)
    torch.manual_seed(seed)
    model = copy.deepcopy(sft)
    start = time.perf_counter()
    history = train_ppo(PolicyWithValueHead(model, separate_value=separate_value), copy.deepcopy(sft),
                        [tokenizer.encode(prompt_text(p)) for p in split.train],
                        exact_match_reward(tokenizer, split.train), config,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, progress=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rewards": history["reward"], "kl": history["kl"],
            "after": evaluate_addition(model, tokenizer, split.test, num_samples=recipe.eval_samples,
                                       seed=recipe.seed)}


def trl_config(recipe: PPOAdditionRecipe, seed: int, out_dir: str):
    """TRL's settings, each set to ours (see README: the differences that remain)."""
    from trl.experimental.ppo import PPOConfig

    c = recipe.ppo
    return PPOConfig(
        output_dir=out_dir, seed=seed, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
        use_cpu=True, bf16=False, num_sample_generations=0,
        total_episodes=c.steps * c.prompts_per_step,  # the same number of sampled completions
        per_device_train_batch_size=c.prompts_per_step, gradient_accumulation_steps=1,
        num_mini_batches=c.prompts_per_step // c.minibatch_size, num_ppo_epochs=c.ppo_epochs,
        local_rollout_forward_batch_size=c.prompts_per_step,
        learning_rate=c.learning_rate, lr_scheduler_type="constant", weight_decay=c.weight_decay,
        kl_coef=c.beta, kl_estimator=c.kl_estimator, gamma=c.gamma, lam=c.lam, cliprange=c.clip_eps,
        cliprange_value=c.value_clip, vf_coef=c.vf_coef, whiten_rewards=c.whiten_rewards,
        missing_eos_penalty=c.no_eos_penalty, stop_token="eos", temperature=c.temperature,
        response_length=c.max_new_tokens,
    )


def run_trl(sft: nn.Module, cfg: dict, recipe: PPOAdditionRecipe, split, tokenizer: AdditionTokenizer,
            seed: int) -> dict:
    import transformers
    from datasets import Dataset
    from trl.experimental.ppo import PPOTrainer

    transformers.set_seed(seed)
    ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    policy = hf_gpt2_model(sft, cfg, **ids)
    reference = hf_gpt2_model(sft, cfg, **ids)
    value_model = hf_gpt2_model(sft, cfg, **ids, sequence_classification=True)
    with torch.no_grad():  # the score head starts like our value head: values near zero
        nn.init.normal_(value_model.score.weight, std=1e-3)
    probe = torch.tensor([tokenizer.encode(prompt_text(p)) for p in split.val[:32]])
    with torch.no_grad():
        gap = (policy(probe).logits - sft.eval()(probe)).abs().max().item()
    if gap > 1e-4:
        raise AssertionError(f"the transformers copy differs from the SFT model by {gap:.2e} in the logits")
    train = Dataset.from_dict({"input_ids": [tokenizer.encode(prompt_text(p)) for p in split.train]})
    evaluation = Dataset.from_dict({"input_ids": [tokenizer.encode(prompt_text(p)) for p in split.val[:64]]})
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = PPOTrainer(args=trl_config(recipe, seed, out_dir), processing_class=hf_addition_tokenizer(tokenizer),
                             model=policy, ref_model=reference, reward_model=ExactMatchRewardModel(tokenizer),
                             train_dataset=train, value_model=value_model, eval_dataset=evaluation)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    logs = [entry for entry in trainer.state.log_history if "objective/scores" in entry]
    # TRL's scores include the missing-EOS penalty; the task reward is the share of exact matches
    rewards = [entry["objective/scores"] + recipe.ppo.no_eos_penalty * (1 - min(1.0, entry["val/num_eos_tokens"]
               / recipe.ppo.prompts_per_step)) for entry in logs]
    model = load_hf_state_into_gpt(copy.deepcopy(sft), policy.state_dict())
    return {"seconds": seconds, "rewards": rewards, "kl": [entry["objective/kl"] for entry in logs],
            "after": evaluate_addition(model, tokenizer, split.test, num_samples=recipe.eval_samples,
                                       seed=recipe.seed)}


# ----------------------------------------------------------------------------------------------- the table
def main() -> None:
    parser = comparison_parser(__doc__.split("\n")[0], "PPO", 100, "compare-trl-ppo")
    parser.add_argument("--trl-conventions", nargs="+", default=[], choices=["all", *TRL_CONVENTIONS],
                        help="run ours with these TRL conventions (use its own --out and --only ours)")
    args = parser.parse_args()
    if args.trl_conventions and args.only != "ours":
        parser.error("--trl-conventions changes our trainer only: add --only ours and a --out folder of its own")
    out = Path(args.out)
    if args.table:
        print_runs_table(out, "PPO", ('KL', 'kl'))
        return

    import transformers
    import trl

    recipe = PPOAdditionRecipe()
    if args.steps is not None:
        recipe.ppo = dataclasses.replace(recipe.ppo, steps=args.steps)
    conventions = list(TRL_CONVENTIONS) if "all" in args.trl_conventions else args.trl_conventions
    separate_value = with_trl_conventions(recipe, conventions)
    tokenizer = AdditionTokenizer()
    split = addition_split(recipe.num_test, recipe.num_val, seed=recipe.seed)
    out.mkdir(parents=True, exist_ok=True)
    sft, record = load_or_train_sft(recipe.sft_recipe(), tokenizer, split, out, resume=True)
    check_reward_agrees(tokenizer, split.train[:50])
    cfg = tiny_gpt_config(tokenizer, emb_dim=recipe.emb_dim, n_layers=recipe.n_layers)
    versions = f"trl {trl.__version__}, transformers {transformers.__version__}, torch {torch.__version__}"
    print(f"{versions}; SFT: {record['steps']} steps, test greedy pass@1 {record['test']['greedy_pass@1']:.3f}")
    runners = {"ours": lambda s: run_ours(sft, recipe, split, tokenizer, s, separate_value),
               "trl": lambda s: run_trl(sft, cfg, recipe, split, tokenizer, s)}
    run_seeds(out, runners, args.seeds, args.only, versions={"ours": f"torch {torch.__version__}", "trl": versions},
              samples=recipe.ppo.steps * recipe.ppo.prompts_per_step,
              hyperparameters={**dataclasses.asdict(recipe.ppo), "separate_value": separate_value},
              before=record["test"])
    print_runs_table(out, "PPO", ('KL', 'kl'))


if __name__ == "__main__":
    main()
