"""The GRPO recipe on two-digit addition, end to end and resumable: what ``llms-from-scratch rlhf-grpo`` runs.

1. SFT a tiny GPT only until it gets ``sft_target`` of the validation problems right (``sft.pth``);
2. measure greedy pass@1, sampled pass@1 and pass@k on the held-out test problems;
3. GRPO with the exact-match reward, the SFT model as the frozen reference (``grpo.pth``, saved after every
   evaluation; ``resume=True`` continues from it and reuses ``sft.pth``);
4. measure the test problems again, write ``results.json`` and the plot ``grpo.png``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..ch04 import GPTModel
from ..files import atomic_path
from ..training.checkpoints import load_model_state_dict, read_checkpoint, save_checkpoint
from .addition import (
    AdditionTokenizer,
    Problem,
    addition_split,
    correct_counts,
    evaluate_addition,
    exact_match_reward,
    prompt_text,
    sft_to_target,
    tiny_gpt_config,
)
from .grpo import GRPOConfig, train_grpo


def default_grpo_config() -> GRPOConfig:
    """The notebook's settings: 300 steps of 16 prompts x 8 answers, two updates per batch of rollouts."""
    return GRPOConfig(steps=300, prompts_per_step=16, group_size=8, learning_rate=3e-4, max_new_tokens=4,
                      updates_per_batch=2, eval_interval=25, beta=0.0)


@dataclass
class AdditionRecipe:
    sft_target: float = 0.5  # stop SFT once this share of the validation problems is right (greedy)
    sft_max_steps: int = 1000
    sft_learning_rate: float = 3e-3
    sft_batch_size: int = 64
    emb_dim: int = 96
    n_layers: int = 3
    num_test: int = 500
    num_val: int = 200
    eval_samples: int = 8  # samples per test problem for sampled pass@1 and pass@k
    seed: int = 123
    grpo: GRPOConfig = field(default_factory=default_grpo_config)


SFT_NAME, GRPO_NAME, RESULTS_NAME, PLOT_NAME = "sft.pth", "grpo.pth", "results.json", "grpo.png"


def load_or_train_sft(recipe: AdditionRecipe, tokenizer: AdditionTokenizer, split, out_dir: Path, resume: bool
                      ) -> tuple[GPTModel, dict[str, Any]]:
    """The SFT model of ``out_dir/sft.pth`` when resuming and it exists, else a freshly trained (and saved) one,
    with its SFT record and test metrics."""
    cfg = tiny_gpt_config(tokenizer, emb_dim=recipe.emb_dim, n_layers=recipe.n_layers)
    torch.manual_seed(recipe.seed)
    model = GPTModel(cfg)
    path = out_dir / SFT_NAME
    if resume and path.is_file():
        ckpt = read_checkpoint(path, require_checksum=True)
        if ckpt.get("config") != cfg:
            raise ValueError(f"{path} holds another model configuration; use another --out or the same options")
        load_model_state_dict(model, ckpt["model"])
        return model, ckpt["sft"]
    sft = sft_to_target(model, tokenizer, split.train, split.val, target=recipe.sft_target,
                        max_steps=recipe.sft_max_steps, batch_size=recipe.sft_batch_size,
                        learning_rate=recipe.sft_learning_rate, seed=recipe.seed)
    sft["test"] = evaluate_addition(model, tokenizer, split.test, num_samples=recipe.eval_samples, seed=recipe.seed)
    save_checkpoint(path, model, config=cfg, sft=sft)
    return model, sft


def run_addition_grpo(out_dir: str | Path, recipe: AdditionRecipe | None = None, *, resume: bool = False,
                      stop_at_step: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the recipe in ``out_dir``; returns the test metrics before and after GRPO and the history.

    Without ``resume`` an existing GRPO checkpoint in ``out_dir`` is an error, so a finished run is never
    overwritten by accident. ``stop_at_step`` ends the GRPO session early (resume it later); the result then
    has no ``after`` metrics.
    """
    recipe = recipe or AdditionRecipe()
    out_dir, grpo_path = start_run(out_dir, GRPO_NAME, resume)
    tokenizer = AdditionTokenizer()
    split = addition_split(recipe.num_test, recipe.num_val, seed=recipe.seed)
    policy, sft = load_or_train_sft(recipe, tokenizer, split, out_dir, resume)
    reference = copy.deepcopy(policy)
    history = train_grpo(policy, reference, [tokenizer.encode(prompt_text(p)) for p in split.train],
                         exact_match_reward(tokenizer, split.train), recipe.grpo,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         evaluate=validation_accuracy(tokenizer, split.val), checkpoint_path=grpo_path,
                         resume=resume and grpo_path.exists(),
                         stop_at_step=stop_at_step, progress=progress)
    results: dict[str, Any] = {"recipe": asdict(recipe), "sft_steps": sft["steps"], "before": sft["test"],
                               "history": history, "checkpoint": str(grpo_path)}
    if len(history["step"]) == 0 or history["step"][-1] < recipe.grpo.steps:
        return results  # stopped early: resume to finish
    results["after"] = evaluate_addition(policy, tokenizer, split.test, num_samples=recipe.eval_samples,
                                         seed=recipe.seed)
    write_results(out_dir / RESULTS_NAME, results)
    results["plot"] = plot_grpo_run(history, sft["test"], results["after"], out_dir / PLOT_NAME)
    return results


def start_run(out_dir: str | Path, checkpoint_name: str, resume: bool) -> tuple[Path, Path]:
    """The output folder (created) and the RL checkpoint's path in it. Without ``resume`` an existing checkpoint
    is an error, so a finished run is never overwritten by accident."""
    out_dir = Path(out_dir)
    path = out_dir / checkpoint_name
    if not resume and path.exists():
        raise FileExistsError(f"{path} exists; continue it with resume (--resume) or use another output folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir, path


def validation_accuracy(tokenizer: AdditionTokenizer, problems: list[Problem]) -> Callable[[nn.Module], dict]:
    """The evaluation both recipes log during training: greedy exact-match accuracy on ``problems``."""
    def evaluate(model: nn.Module) -> dict[str, float]:
        return {"val_greedy_pass@1": sum(correct_counts(model, tokenizer, problems)) / len(problems)}

    return evaluate


def write_results(path: Path, results: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=2))


def moving_average(values: list[float], window: int) -> list[float]:
    """Mean of the last ``window`` values at each position (fewer at the start)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_grpo_run(history: dict[str, Any], before: dict[str, float], after: dict[str, float],
                  path: str | Path | None = None):
    """Reward curve, share of zero-variance groups, validation accuracy, and test pass@k before and after.

    Returns the figure, or the path it was saved to when ``path`` is given.
    """
    import matplotlib.pyplot as plt

    fig, (ax_reward, ax_val, ax_pass) = plt.subplots(1, 3, figsize=(13, 3.4))
    steps = history["step"]
    window = max(1, len(steps) // 20)
    ax_reward.plot(steps, history["reward"], color="#9bbbd9", lw=0.8, label="mean reward (batch)")
    ax_reward.plot(steps, moving_average(history["reward"], window), color="#1f5f99", label=f"mean of {window}")
    ax_reward.plot(steps, moving_average(history["zero_variance"], window), color="#c0392b", ls="--",
                   label="groups with zero variance")
    ax_reward.set_xlabel("GRPO step")
    ax_reward.set_ylim(0, 1.02)
    ax_reward.legend(fontsize=8, loc="lower right")
    ax_reward.set_title("Training reward")
    return finish_recipe_plot(fig, ax_val, ax_pass, history, before, after, "GRPO", path)


def finish_recipe_plot(fig, ax_val, ax_pass, history: dict[str, Any], before: dict[str, float],
                       after: dict[str, float], algorithm: str, path: str | Path | None):
    """The panels both recipes' plots share, drawn into ``ax_val`` and ``ax_pass``: validation accuracy per step,
    and the test pass rates after SFT and after ``algorithm``. Returns ``fig``, or the path it was saved to."""
    import matplotlib.pyplot as plt

    for key, values in history["eval"].items():
        ax_val.plot(history["eval_step"], values, "o-", ms=3, label=key)
    ax_val.set_xlabel(f"{algorithm} step")
    ax_val.set_ylim(0, 1.02)
    ax_val.legend(fontsize=8, loc="lower right")
    ax_val.set_title("Validation accuracy")
    keys = list(before)
    x = range(len(keys))
    ax_pass.bar([i - 0.2 for i in x], [before[k] for k in keys], width=0.4, label="after SFT", color="#9bbbd9")
    ax_pass.bar([i + 0.2 for i in x], [after[k] for k in keys], width=0.4, label=f"after {algorithm}",
                color="#1f5f99")
    for i, k in enumerate(keys):
        ax_pass.text(i - 0.2, before[k] + 0.01, f"{before[k]:.2f}", ha="center", fontsize=8)
        ax_pass.text(i + 0.2, after[k] + 0.01, f"{after[k]:.2f}", ha="center", fontsize=8)
    ax_pass.set_xticks(list(x), [k.replace("_", " ") for k in keys], fontsize=8)
    ax_pass.set_ylim(0, 1.1)
    ax_pass.legend(fontsize=8, loc="lower right")
    ax_pass.set_title("Held-out test problems")
    fig.tight_layout()
    if path is None:
        return fig
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
