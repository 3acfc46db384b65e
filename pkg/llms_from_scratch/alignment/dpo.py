"""Direct Preference Optimization (DPO, Rafailov et al. 2023) from scratch, for the chapter 7 bonus.

For a prompt with a preferred ("chosen") and a dispreferred ("rejected") response, DPO trains the policy so
that, relative to a frozen reference model, the chosen response becomes more likely than the rejected one::

    reward(y)  = beta * (log pi(y | x) - log pi_ref(y | x))
    loss       = -log sigmoid(reward(chosen) - reward(rejected))

Log-probabilities are taken over the response tokens only (the prompt and the padding are masked) and, as
in the book's bonus notebook, averaged per token so long and short responses weigh the same
(:func:`~llms_from_scratch.alignment.logprobs.compute_logprobs`, shared with the other alignment recipes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..ch07 import PAD_TOKEN_ID, format_prompt
from .logprobs import compute_logprobs


class PreferenceDataset(Dataset):
    """Token ids of the prompt, of prompt + chosen answer and of prompt + rejected answer for each entry."""

    def __init__(self, data: Sequence[dict[str, Any]], tokenizer, prompt_style: str = "alpaca"):
        self.data = list(data)
        self.encoded = []
        for i, entry in enumerate(self.data):
            if "chosen" not in entry or "rejected" not in entry:
                raise ValueError(f"entry {i} lacks 'chosen'/'rejected'; use the instruction-data-with-preference set")
            prompt = format_prompt(entry, prompt_style)
            self.encoded.append({
                "prompt": tokenizer.encode(prompt),
                "chosen": tokenizer.encode(prompt + entry["chosen"]),
                "rejected": tokenizer.encode(prompt + entry["rejected"]),
            })

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.encoded[index]

    def __len__(self) -> int:
        return len(self.data)


def preference_collate_fn(batch: Sequence[dict[str, list[int]]], pad_token_id: int = PAD_TOKEN_ID,
                          allowed_max_length: int | None = None, mask_prompt_tokens: bool = True,
                          device: str | torch.device = "cpu") -> dict[str, Any]:
    """Pad chosen and rejected sequences to one common length; masks mark the tokens whose log-prob counts.

    Returns ``chosen``/``rejected`` ``(batch, length)`` ids and boolean ``chosen_mask``/``rejected_mask``
    that are True on response tokens (and on prompt tokens too when ``mask_prompt_tokens=False``).
    """
    if len(batch) == 0:
        raise ValueError("preference_collate_fn got an empty batch")
    max_length = max(len(item[key]) for item in batch for key in ("chosen", "rejected"))
    out: dict[str, Any] = {"prompt": [torch.tensor(item["prompt"]) for item in batch]}
    for key in ("chosen", "rejected"):
        ids_rows, mask_rows = [], []
        for item in batch:
            ids = item[key]
            padded = torch.tensor(ids + [pad_token_id] * (max_length - len(ids)))
            mask = torch.zeros(max_length, dtype=torch.bool)
            mask[:len(ids)] = True  # real tokens, padding excluded by position (the text may contain <|endoftext|>)
            if mask_prompt_tokens:
                mask[:len(item["prompt"])] = False
            ids_rows.append(padded)
            mask_rows.append(mask)
        ids_tensor, mask_tensor = torch.stack(ids_rows), torch.stack(mask_rows)
        if allowed_max_length is not None:
            ids_tensor, mask_tensor = ids_tensor[:, :allowed_max_length], mask_tensor[:, :allowed_max_length]
        out[key], out[f"{key}_mask"] = ids_tensor.to(device), mask_tensor.to(device)
    return out


def compute_dpo_loss(model_chosen_logprobs: torch.Tensor, model_rejected_logprobs: torch.Tensor,
                     reference_chosen_logprobs: torch.Tensor, reference_rejected_logprobs: torch.Tensor,
                     beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO loss averaged over the batch, plus the mean chosen and rejected rewards (detached)."""
    chosen_rewards = beta * (model_chosen_logprobs - reference_chosen_logprobs)
    rejected_rewards = beta * (model_rejected_logprobs - reference_rejected_logprobs)
    # -log sigmoid(x) written as logsigmoid for numerical stability at large |x|
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)
    return losses.mean(), chosen_rewards.detach().mean(), rejected_rewards.detach().mean()


def compute_dpo_loss_batch(batch: dict[str, Any], policy_model: nn.Module, reference_model: nn.Module,
                           beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss, chosen reward, rejected reward and preference accuracy (share with chosen > rejected) of a batch."""
    policy_chosen = compute_logprobs(policy_model(batch["chosen"]), batch["chosen"], batch["chosen_mask"])
    policy_rejected = compute_logprobs(policy_model(batch["rejected"]), batch["rejected"], batch["rejected_mask"])
    with torch.no_grad():  # the reference only anchors the rewards; it never learns
        ref_chosen = compute_logprobs(reference_model(batch["chosen"]), batch["chosen"], batch["chosen_mask"])
        ref_rejected = compute_logprobs(reference_model(batch["rejected"]), batch["rejected"], batch["rejected_mask"])
    loss, chosen_reward, rejected_reward = compute_dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected,
                                                            beta)
    margins = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    accuracy = (margins > 0).float().mean().detach()
    return loss, chosen_reward, rejected_reward, accuracy


def compute_dpo_loss_loader(data_loader: DataLoader, policy_model: nn.Module, reference_model: nn.Module,
                            beta: float, num_batches: int | None = None) -> dict[str, float]:
    """Means of loss, rewards, reward margin and preference accuracy over the first ``num_batches`` batches."""
    if len(data_loader) == 0:
        raise ValueError("the data loader is empty")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    totals = {"loss": 0.0, "chosen_reward": 0.0, "rejected_reward": 0.0, "accuracy": 0.0}
    for i, batch in enumerate(data_loader):
        if i >= num_batches:
            break
        loss, chosen, rejected, accuracy = compute_dpo_loss_batch(batch, policy_model, reference_model, beta)
        for key, value in zip(totals, (loss, chosen, rejected, accuracy)):
            totals[key] += value.item()
    means = {key: value / num_batches for key, value in totals.items()}
    means["reward_margin"] = means["chosen_reward"] - means["rejected_reward"]
    return means


def evaluate_dpo_loss_loader(policy_model: nn.Module, reference_model: nn.Module, train_loader: DataLoader,
                             val_loader: DataLoader, beta: float, eval_iter: int) -> dict[str, dict[str, float]]:
    policy_model.eval()
    with torch.no_grad():
        train = compute_dpo_loss_loader(train_loader, policy_model, reference_model, beta, eval_iter)
        val = compute_dpo_loss_loader(val_loader, policy_model, reference_model, beta, eval_iter)
    policy_model.train()
    return {"train": train, "val": val}


def freeze(model: nn.Module) -> nn.Module:
    """Put a reference model in eval mode with no trainable parameters."""
    model.eval()
    model.requires_grad_(False)
    return model


def train_model_dpo_simple(policy_model: nn.Module, reference_model: nn.Module, train_loader: DataLoader,
                           val_loader: DataLoader, optimizer: torch.optim.Optimizer, num_epochs: int, beta: float,
                           eval_freq: int, eval_iter: int, verbose: bool = True) -> dict[str, list]:
    """Train with the DPO loss; every ``eval_freq`` steps log losses, reward margins and preference accuracy."""
    freeze(reference_model)
    tracking: dict[str, list] = {key: [] for key in (
        "train_losses", "val_losses", "train_reward_margins", "val_reward_margins", "train_accuracies",
        "val_accuracies", "tokens_seen")}
    tokens_seen, global_step = 0, -1
    for epoch in range(num_epochs):
        policy_model.train()
        for batch in train_loader:
            optimizer.zero_grad()
            loss, *_ = compute_dpo_loss_batch(batch, policy_model, reference_model, beta)
            loss.backward()
            optimizer.step()
            tokens_seen += batch["chosen"].numel()
            global_step += 1
            if global_step % eval_freq == 0:
                res = evaluate_dpo_loss_loader(policy_model, reference_model, train_loader, val_loader, beta,
                                               eval_iter)
                for split in ("train", "val"):
                    tracking[f"{split}_losses"].append(res[split]["loss"])
                    tracking[f"{split}_reward_margins"].append(res[split]["reward_margin"])
                    tracking[f"{split}_accuracies"].append(res[split]["accuracy"])
                tracking["tokens_seen"].append(tokens_seen)
                if verbose:
                    print(f"Ep {epoch + 1} (Step {global_step:06d}): "
                          f"Train loss {res['train']['loss']:.3f}, Val loss {res['val']['loss']:.3f}, "
                          f"Train reward margin {res['train']['reward_margin']:.3f}, "
                          f"Val reward margin {res['val']['reward_margin']:.3f}")
    return tracking
