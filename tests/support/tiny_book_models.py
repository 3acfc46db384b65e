"""Small checkpoints of the book's own models for the serving tests, written as the commands write them:
``checkpoint.pth`` as ``pretrain`` saves it, and chapter 6/7 ``.safetensors`` files as ``finetune-classifier`` and
``finetune-instruct`` save them.

:func:`train_spam_classifier` fine-tunes chapter 6's classifier head on a few hand-written messages for a few
seconds, enough to tell an obvious spam message from an everyday one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.ch06 import PAD_TOKEN_ID, convert_to_classifier, save_model
from llms_from_scratch.training.base_model import STAND_IN_CONFIG
from llms_from_scratch.training.checkpoints import save_checkpoint

# quick mode's stand-in shape (the server infers its heads), with a short context so that training is quick
CONFIG = {**STAND_IN_CONFIG, "context_length": 32}
SPAM = [
    "WINNER! You have won a free prize. Call now to claim your cash reward!",
    "Congratulations! You won a FREE holiday. Text WIN to 80082 now!",
    "URGENT! Claim your free cash prize now, call 0800 123 456",
    "Free entry to win a brand new phone! Text CLAIM now",
    "You have been selected for a cash award of 1000 pounds. Call now!",
    "Win a free iPhone! Reply WIN now to claim your prize",
]
HAM = [
    "Are we still meeting for lunch tomorrow?",
    "I'll be home late tonight, save me some dinner.",
    "Can you send me the notes from today's lecture?",
    "Happy birthday! Hope you have a great day.",
    "Running ten minutes late, see you soon.",
    "Did you feed the cat this morning?",
]
OBVIOUS_SPAM = "Congratulations, you won a free cash prize! Call now to claim your reward!"


def write_pretrain_checkpoint(path: Path, seed: int = 0) -> GPTModel:
    """A random chapter 4 model saved as ``pretrain`` saves it (its config inside); returns the model."""
    torch.manual_seed(seed)
    model = GPTModel(CONFIG).eval()
    save_checkpoint(path, model, config=CONFIG)
    return model


def write_instruct_checkpoint(path: Path, seed: int = 1) -> GPTModel:
    """A random chapter 4 model saved as ``finetune-instruct`` saves its weights (with room for the Alpaca
    prompt in its context); returns the model."""
    torch.manual_seed(seed)
    model = GPTModel({**CONFIG, "context_length": 128}).eval()
    save_model(model, path)
    return model


def encode_padded(tokenizer, text: str, length: int) -> list[int]:
    ids = tokenizer.encode(text)[:length]
    return ids + [PAD_TOKEN_ID] * (length - len(ids))


def train_spam_classifier(path: Path, tokenizer, seed: int = 123, steps: int = 30) -> GPTModel:
    """Chapter 6's classifier (last block, final norm and head training) fitted to :data:`SPAM` and :data:`HAM`, padded to
    the whole context as the server pads by default, and saved as ``finetune-classifier`` saves it."""
    torch.manual_seed(seed)
    model = convert_to_classifier(GPTModel(CONFIG))  # the book's choice: last block, final norm, head
    length = CONFIG["context_length"]
    inputs = torch.tensor([encode_padded(tokenizer, t, length) for t in SPAM + HAM])
    targets = torch.tensor([1] * len(SPAM) + [0] * len(HAM))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs)[:, -1, :], targets)  # read at the last position
        loss.backward()
        optimizer.step()
    model.eval()
    save_model(model, path)
    return model
