"""The PPO recipe on two-digit addition, end to end and resumable: what ``llms-from-scratch rlhf-ppo`` runs.

1. SFT a tiny GPT only until it gets ``sft_target`` of the validation problems right (``sft.pth``, the same
   starting point as the GRPO recipe's);
2. measure greedy pass@1, sampled pass@1 and pass@k on the held-out test problems, and keep a few greedy samples;
3. PPO with the exact-match reward, a value head on the policy and the SFT model as the frozen reference
   (``ppo.pth``, saved after every evaluation; ``resume=True`` continues from it and reuses ``sft.pth``);
4. measure the test problems again, write ``results.json`` and the plot ``ppo.png``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from .addition import (
    AdditionTokenizer,
    Problem,
    addition_split,
    evaluate_addition,
    exact_match_reward,
    prompt_text,
)
from .addition_recipe import (
    AdditionRecipe,
    finish_recipe_plot,
    load_or_train_sft,
    moving_average,
    start_run,
    validation_accuracy,
    write_results,
)
from .ppo import PolicyWithValueHead, PPOConfig, train_ppo
from .rollouts import sample_completions


def default_ppo_config() -> PPOConfig:
    return PPOConfig(steps=100, prompts_per_step=64, ppo_epochs=4, minibatch_size=32, learning_rate=1e-4,
                     beta=0.02, max_new_tokens=4, eval_interval=10, no_eos_penalty=1.0)


@dataclass
class PPOAdditionRecipe:
    sft_target: float = 0.5  # stop SFT once this share of the validation problems is right (greedy)
    sft_max_steps: int = 1000
    sft_learning_rate: float = 3e-3
    sft_batch_size: int = 64
    emb_dim: int = 96
    n_layers: int = 3
    num_test: int = 500
    num_val: int = 200
    eval_samples: int = 8  # samples per test problem for sampled pass@1 and pass@k
    num_shown: int = 8  # test problems whose greedy answers are kept before and after
    seed: int = 123
    ppo: PPOConfig = field(default_factory=default_ppo_config)

    def sft_recipe(self) -> AdditionRecipe:
        """The GRPO recipe's SFT settings, so both recipes can start from the same ``sft.pth``."""
        return AdditionRecipe(sft_target=self.sft_target, sft_max_steps=self.sft_max_steps,
                              sft_learning_rate=self.sft_learning_rate, sft_batch_size=self.sft_batch_size,
                              emb_dim=self.emb_dim, n_layers=self.n_layers, num_test=self.num_test,
                              num_val=self.num_val, eval_samples=self.eval_samples, seed=self.seed)


PPO_NAME, RESULTS_NAME, PLOT_NAME = "ppo.pth", "results.json", "ppo.png"


def greedy_samples(model: nn.Module, tokenizer: AdditionTokenizer, problems: list[Problem]) -> list[str]:
    """``"12+45=57<eos>"``-style lines: each prompt followed by the model's greedy completion."""
    prompts = [tokenizer.encode(prompt_text(p)) for p in problems]
    rollouts = sample_completions(model, prompts, max_new_tokens=4, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id, temperature=0.0)
    return [prompt_text(p) + tokenizer.decode(c) for p, c in zip(problems, rollouts.completions())]


def run_addition_ppo(out_dir: str | Path, recipe: PPOAdditionRecipe | None = None, *, resume: bool = False,
                     stop_at_step: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the recipe in ``out_dir``; returns the test metrics and samples before and after PPO and
    the history.

    Without ``resume`` an existing PPO checkpoint in ``out_dir`` is an error, so a finished run is never
    overwritten by accident. ``stop_at_step`` ends the PPO session early (resume it later); the result then has
    no ``after`` metrics.
    """
    recipe = recipe or PPOAdditionRecipe()
    out_dir, ppo_path = start_run(out_dir, PPO_NAME, resume)
    tokenizer = AdditionTokenizer()
    split = addition_split(recipe.num_test, recipe.num_val, seed=recipe.seed)
    model, sft = load_or_train_sft(recipe.sft_recipe(), tokenizer, split, out_dir, resume)
    reference = copy.deepcopy(model)
    shown = split.test[:recipe.num_shown]
    samples_before = greedy_samples(model, tokenizer, shown)
    policy = PolicyWithValueHead(model)
    history = train_ppo(policy, reference, [tokenizer.encode(prompt_text(p)) for p in split.train],
                        exact_match_reward(tokenizer, split.train), recipe.ppo,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        evaluate=validation_accuracy(tokenizer, split.val), checkpoint_path=ppo_path,
                        resume=resume and ppo_path.exists(),
                        stop_at_step=stop_at_step, progress=progress)
    results: dict[str, Any] = {"recipe": asdict(recipe), "sft_steps": sft["steps"], "before": sft["test"],
                               "samples_before": samples_before, "history": history, "checkpoint": str(ppo_path)}
    if len(history["step"]) == 0 or history["step"][-1] < recipe.ppo.steps:
        return results  # stopped early: resume to finish
    results["after"] = evaluate_addition(model, tokenizer, split.test, num_samples=recipe.eval_samples,
                                         seed=recipe.seed)
    results["samples_after"] = greedy_samples(model, tokenizer, shown)
    write_results(out_dir / RESULTS_NAME, results)
    results["plot"] = plot_ppo_run(history, sft["test"], results["after"], out_dir / PLOT_NAME)
    return results


def plot_ppo_run(history: dict[str, Any], before: dict[str, float], after: dict[str, float],
                 path: str | Path | None = None):
    """Reward and KL to the reference per step, validation accuracy, and test pass@k before and after.

    Returns the figure, or the path it was saved to when ``path`` is given.
    """
    import matplotlib.pyplot as plt

    fig, (ax_reward, ax_val, ax_pass) = plt.subplots(1, 3, figsize=(13, 3.4))
    steps = history["step"]
    window = max(1, len(steps) // 20)
    ax_reward.plot(steps, history["reward"], color="#9bbbd9", lw=0.8, label="mean reward (batch)")
    ax_reward.plot(steps, moving_average(history["reward"], window), color="#1f5f99", label=f"mean of {window}")
    ax_reward.set_xlabel("PPO step")
    ax_reward.set_ylim(0, 1.02)
    ax_reward.set_title("Training reward and KL")
    ax_kl = ax_reward.twinx()
    ax_kl.plot(steps, moving_average(history["kl"], window), color="#c0392b", ls="--", label="KL to reference")
    ax_kl.set_ylabel("KL per completion (nats)")
    lines = ax_reward.get_legend_handles_labels()
    kl_lines = ax_kl.get_legend_handles_labels()
    ax_reward.legend(lines[0] + kl_lines[0], lines[1] + kl_lines[1], fontsize=8, loc="lower right")
    return finish_recipe_plot(fig, ax_val, ax_pass, history, before, after, "PPO", path)
