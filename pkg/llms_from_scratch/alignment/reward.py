"""A Bradley-Terry reward model: a pretrained decoder with a scalar head read at the last real token.

Given a prompt with a preferred ("chosen") and a dispreferred ("rejected") answer, the reward model ``r`` is trained
so that the chosen text scores higher. Bradley and Terry's model of pairwise comparisons says that chosen beats
rejected with probability ``sigmoid(r(chosen) - r(rejected))``; maximising the log of that probability gives the loss::

    loss = -log sigmoid(r_chosen - r_rejected - margin)  +  centering * (r_chosen + r_rejected) ** 2

The optional ``margin`` asks for a gap, and the centring term keeps the rewards near zero (the loss only sees
differences, so without it the whole scale may drift). The reward is read at the last real token because, in a
causal decoder, it is the only position that has seen the whole text. Inputs are moved to right padding before the
forward pass: then no real token ever attends to padding and positions start at 0, so neither the padding side nor
the pad-token id can change a reward.

Works with chapter 4's ``GPTModel`` and with the model zoo's ``DecoderLM`` (both use the book's module names
``tok_emb``, ``trf_blocks``, ``final_norm``, ``out_head``).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..ch07 import format_prompt
from .sequences import gather_last_real, pad_sequences, to_right_padding

Batch = dict[str, Any]


# ----------------------------------------------------------------------------------------------- loss and metric
def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor,
                       margin: float | torch.Tensor = 0.0, centering: float = 0.0) -> torch.Tensor:
    """Mean Bradley-Terry loss of ``(batch,)`` reward pairs, with an optional margin and reward-centring term."""
    # logsigmoid instead of log(sigmoid(.)): exact for large negative differences, where sigmoid underflows to 0
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards - margin).mean()
    if centering:
        loss = loss + centering * ((chosen_rewards + rejected_rewards) ** 2).mean()
    return loss


def pairwise_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
    """Share of pairs whose chosen answer gets the strictly higher reward (a tie counts as wrong)."""
    return (chosen_rewards > rejected_rewards).double().mean().item()


# ----------------------------------------------------------------------------------------------- the model
def _decoder_kind(body: nn.Module) -> str:
    from ..models.decoder import DecoderLM

    if isinstance(body, DecoderLM):
        return "zoo"
    if all(hasattr(body, name) for name in ("tok_emb", "pos_emb", "drop_emb", "trf_blocks", "final_norm")):
        return "gpt"
    raise TypeError(f"RewardModel needs chapter 4's GPTModel or a model-zoo DecoderLM, got {type(body).__name__}")


class RewardModel(nn.Module):
    """A decoder ``body`` whose language-model head is replaced by ``head``, a linear map to one number.

    ``forward(inputs, attention_mask)`` returns one reward per row, ``(batch,)``. ``inputs`` are token ids
    ``(batch, tokens)``, or, with ``start_block=k``, the hidden states ``(batch, tokens, emb_dim)`` that enter block
    ``k`` (see :func:`precompute_trunk`). ``attention_mask`` is True on real tokens; left or right padding both work.
    """

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.kind = _decoder_kind(body)
        emb_dim = body.tok_emb.embedding_dim
        body.out_head = nn.Identity()  # the vocabulary projection is not needed (a tied one keeps tok_emb's weight)
        self.body = body
        self.head = nn.Linear(emb_dim, 1)
        nn.init.normal_(self.head.weight, std=1 / math.sqrt(emb_dim + 1))
        nn.init.zeros_(self.head.bias)

    @property
    def n_blocks(self) -> int:
        return len(self.body.trf_blocks)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token (+ learned position) embeddings of right-padded ids: ``(batch, tokens, emb_dim)``."""
        body = self.body
        x = body.tok_emb(input_ids)
        if body.pos_emb is not None:
            if input_ids.shape[1] > body.pos_emb.num_embeddings:
                raise ValueError(f"{input_ids.shape[1]} tokens exceed the model's {body.pos_emb.num_embeddings} "
                                 "positions; pass a smaller max_length to RewardPairDataset")
            x = x + body.pos_emb(torch.arange(input_ids.shape[1], device=input_ids.device))
        return body.drop_emb(x)

    def run_blocks(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Blocks ``start`` to ``stop`` on right-padded hidden states; plain causal attention needs no mask here."""
        blocks = list(self.body.trf_blocks)[start:stop]
        if self.kind == "gpt":
            for block in blocks:
                x = block(x)
            return x
        if any(block.att.sliding_window is not None for block in blocks):
            raise ValueError("sliding-window attention needs a window mask; use a model without sliding windows")
        rope = None
        if self.body.rope is not None:
            positions = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)  # (batch, tokens)
            rope = self.body.rope(positions, x.dtype)
        for block in blocks:
            x = block(x, None, rope, None)
        return x

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor | None = None,
                start_block: int = 0) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones(inputs.shape[:2], dtype=torch.bool, device=inputs.device)
        inputs, attention_mask = to_right_padding(inputs, attention_mask)
        x = self.embed(inputs) if start_block == 0 else inputs
        x = self.body.final_norm(self.run_blocks(x, start_block))
        return self.head(gather_last_real(x, attention_mask)).squeeze(-1)  # (batch,)


def trainable_blocks(trainable: str, n_blocks: int) -> int:
    """Index of the first block that trains for ``trainable`` ("head", "last_N" or "all")."""
    if trainable == "head":
        return n_blocks
    if trainable == "all":
        return 0
    match = re.fullmatch(r"last_(\d+)", trainable)
    if match is None or not 1 <= int(match.group(1)) <= n_blocks:
        raise ValueError(f"trainable must be 'head', 'all' or 'last_N' with 1 <= N <= {n_blocks}, got {trainable!r}")
    return n_blocks - int(match.group(1))


def set_trainable(model: RewardModel, trainable: str) -> int:
    """Freeze what does not train and return the first trainable block (``model.n_blocks`` for "head").

    The scalar head always trains; the final norm trains with any block; "all" also trains the embeddings.
    """
    first = trainable_blocks(trainable, model.n_blocks)
    model.requires_grad_(trainable == "all")
    for block in list(model.body.trf_blocks)[first:]:
        block.requires_grad_(True)
    model.body.final_norm.requires_grad_(first < model.n_blocks)
    model.head.requires_grad_(True)
    return first


# ----------------------------------------------------------------------------------------------- data
def split_preference_data(data: Sequence[dict[str, Any]], held_out_frac: float = 0.2,
                          seed: int = 123) -> tuple[list, list]:
    """``(train, held_out)``: a random split fixed by ``seed``, so every run holds out the same pairs."""
    if not 0 < held_out_frac < 1:
        raise ValueError(f"held_out_frac must be between 0 and 1, got {held_out_frac}")
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    n_held = max(1, round(len(data) * held_out_frac))
    return [data[i] for i in order[n_held:]], [data[i] for i in order[:n_held]]


class RewardPairDataset(Dataset):
    """Token ids of prompt + chosen answer and prompt + rejected answer for each preference entry.

    A text longer than ``max_length`` keeps its *last* ``max_length`` tokens: the answer and the last token,
    where the reward is read, matter more than the start of a long prompt.
    """

    def __init__(self, data: Sequence[dict[str, Any]], tokenizer, prompt_style: str = "alpaca",
                 max_length: int | None = None) -> None:
        self.items = []
        for i, entry in enumerate(data):
            if "chosen" not in entry or "rejected" not in entry:
                raise ValueError(f"entry {i} lacks 'chosen'/'rejected'; use the instruction-data-with-preference set")
            prompt = format_prompt(entry, prompt_style)
            item = {}
            for key in ("chosen", "rejected"):
                ids = tokenizer.encode(prompt + entry[key])
                item[key] = ids[-max_length:] if max_length else ids
            self.items.append(item)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)


def reward_collate(batch: Sequence[dict[str, Any]], pad_token_id: int = 0, side: str = "right") -> Batch:
    """Pad the chosen and rejected rows of a batch to one common length.

    Items hold token-id lists (:class:`RewardPairDataset`) or hidden-state tensors ``(tokens, emb_dim)``
    (:func:`precompute_trunk`). Returns ``chosen``/``rejected`` and boolean ``chosen_mask``/``rejected_mask``.
    """
    if len(batch) == 0:
        raise ValueError("reward_collate got an empty batch")
    rows = [item[key] for key in ("chosen", "rejected") for item in batch]
    n = len(batch)
    if isinstance(rows[0], torch.Tensor):  # hidden states: zero vectors as padding, always on the right
        length = max(r.shape[0] for r in rows)
        x = torch.zeros(len(rows), length, rows[0].shape[-1], dtype=rows[0].dtype)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, r in enumerate(rows):
            x[i, :r.shape[0]], mask[i, :r.shape[0]] = r, True
        out = {"chosen": x[:n], "rejected": x[n:], "chosen_mask": mask[:n], "rejected_mask": mask[n:]}
        out["start_block"] = batch[0]["start_block"]
        return out
    ids, mask = pad_sequences(rows, pad_token_id, side)
    return {"chosen": ids[:n], "rejected": ids[n:], "chosen_mask": mask[:n], "rejected_mask": mask[n:]}


@torch.no_grad()
def precompute_trunk(model: RewardModel, dataset: Dataset, start_block: int, batch_size: int = 16,
                     progress: bool = False) -> list[dict[str, Any]]:
    """Run the frozen blocks below ``start_block`` once over ``dataset``; return items for :func:`reward_collate`.

    When those blocks are frozen they map a text to the same hidden states in every epoch, so storing them once
    gives the same losses and gradients as running the whole model at every step, for a fraction of the cost.
    """
    from tqdm import tqdm

    model.eval()
    device = next(model.parameters()).device
    items: list[dict[str, Any]] = [{"start_block": start_block} for _ in range(len(dataset))]
    # similar lengths in one batch keep the padding (wasted work) small
    keys = [(i, key) for i in range(len(dataset)) for key in ("chosen", "rejected")]
    keys.sort(key=lambda k: len(dataset[k[0]][k[1]]))
    for start in tqdm(range(0, len(keys), batch_size), desc="frozen blocks", disable=not progress):
        chunk = keys[start:start + batch_size]
        ids, mask = pad_sequences([dataset[i][key] for i, key in chunk], 0, "right")
        x = model.run_blocks(model.embed(ids.to(device)), 0, start_block).cpu()
        lengths = mask.sum(dim=-1)
        for row, (i, key) in enumerate(chunk):
            items[i][key] = x[row, :lengths[row]].clone()
    return items


# ----------------------------------------------------------------------------------------------- training
def score_pairs(model: RewardModel, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards ``(batch,)`` of the chosen and the rejected rows, in one forward pass."""
    device = next(model.parameters()).device
    n = batch["chosen"].shape[0]
    length = max(batch["chosen"].shape[1], batch["rejected"].shape[1])

    def widen(x: torch.Tensor) -> torch.Tensor:  # pad on the right up to ``length`` so the two halves stack
        pad = [0, 0] * (x.dim() - 2) + [0, length - x.shape[1]]
        return F.pad(x, pad)

    inputs = torch.cat([widen(batch["chosen"]), widen(batch["rejected"])]).to(device)
    mask = torch.cat([widen(batch["chosen_mask"]), widen(batch["rejected_mask"])]).to(device)
    rewards = model(inputs, mask, start_block=batch.get("start_block", 0))
    return rewards[:n], rewards[n:]


@torch.no_grad()
def evaluate_reward_model(model: RewardModel, dataset: Sequence, collate_fn: Callable, batch_size: int = 16,
                          margin: float = 0.0, centering: float = 0.0) -> dict[str, Any]:
    """Loss, pairwise accuracy and every pair's rewards (lists, in dataset order) on ``dataset``."""
    was_training = model.training
    model.eval()
    chosen, rejected = [], []
    for start in range(0, len(dataset), batch_size):
        rc, rr = score_pairs(model, collate_fn([dataset[i] for i in range(start, min(start + batch_size,
                                                                                     len(dataset)))]))
        chosen.append(rc.float().cpu())
        rejected.append(rr.float().cpu())
    model.train(was_training)
    rc, rr = torch.cat(chosen), torch.cat(rejected)
    return {"loss": bradley_terry_loss(rc, rr, margin, centering).item(), "accuracy": pairwise_accuracy(rc, rr),
            "chosen_rewards": rc.tolist(), "rejected_rewards": rr.tolist()}


@torch.no_grad()
def score_texts(model: RewardModel, token_lists: Sequence[Sequence[int]], batch_size: int = 16) -> list[float]:
    """Reward of each token list (a whole prompt + answer text)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[float] = []
    for start in range(0, len(token_lists), batch_size):
        ids, mask = pad_sequences(token_lists[start:start + batch_size], 0, "right")
        out.extend(model(ids.to(device), mask.to(device)).float().cpu().tolist())
    model.train(was_training)
    return out


def _epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: a shuffle fixed by (seed, epoch), so a resumed run sees the same batches."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    return [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]  # drop the last partial batch


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def train_reward_model(model: RewardModel, train_set: Sequence, val_set: Sequence, collate_fn: Callable,
                       optimizer: torch.optim.Optimizer, *, num_epochs: int, batch_size: int = 8,
                       margin: float = 0.0, centering: float = 0.0, eval_freq: int = 20, seed: int = 123,
                       checkpoint_path: str | Path | None = None, checkpoint_every: int = 50,
                       max_steps: int | None = None, progress: bool = True) -> dict[str, list[float]]:
    """Train with the Bradley-Terry loss; return the history (step, train loss/accuracy, validation ones).

    Every ``eval_freq`` steps (and at the end) the validation loss and pairwise accuracy are recorded next to the
    mean training loss/accuracy since the last record. With ``checkpoint_path`` the trainable weights, optimizer,
    random state and history are saved every ``checkpoint_every`` steps and at the end, and a run started again
    with the same arguments resumes from the file, giving the same result as one uninterrupted run.
    ``max_steps`` stops early (after a checkpoint): a way to split a long run into parts.
    """
    from tqdm import tqdm

    batches_per_epoch = len(train_set) // batch_size
    if batches_per_epoch == 0:
        raise ValueError(f"the training set ({len(train_set)} pairs) is smaller than one batch ({batch_size})")
    total_steps = num_epochs * batches_per_epoch
    history: dict[str, list[float]] = {"step": [], "train_loss": [], "train_accuracy": [], "val_loss": [],
                                       "val_accuracy": []}
    step = 0
    losses: list[float] = []  # training loss and accuracy of the steps since the last record
    accs: list[float] = []
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["trainable"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        step, history = state["step"], state["history"]
        losses, accs = state["pending_loss"], state["pending_accuracy"]

    def save() -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            torch.save({"trainable": _trainable_state(model), "optimizer": optimizer.state_dict(),
                        "rng": torch.get_rng_state(), "step": step, "history": history,
                        "pending_loss": losses, "pending_accuracy": accs}, tmp)
            tmp.replace(path)  # a crash while saving leaves the previous checkpoint intact

    def record() -> None:
        val = evaluate_reward_model(model, val_set, collate_fn, batch_size, margin, centering)
        history["step"].append(step)
        history["train_loss"].append(sum(losses) / len(losses))
        history["train_accuracy"].append(sum(accs) / len(accs))
        history["val_loss"].append(val["loss"])
        history["val_accuracy"].append(val["accuracy"])

    stop = total_steps if max_steps is None else min(total_steps, max_steps)
    bar = tqdm(total=total_steps, initial=step, desc="reward model", unit="step", disable=not progress)
    model.train()
    while step < stop:
        epoch, index = divmod(step, batches_per_epoch)
        batch = collate_fn([train_set[i] for i in _epoch_order(len(train_set), batch_size, seed, epoch)[index]])
        chosen, rejected = score_pairs(model, batch)
        loss = bradley_terry_loss(chosen, rejected, margin, centering)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        losses.append(loss.item())
        accs.append(pairwise_accuracy(chosen.detach(), rejected.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % eval_freq == 0 or step == total_steps:
            record()
            losses.clear()
            accs.clear()
        if step % checkpoint_every == 0 or step == stop:
            save()
    bar.close()
    return history

