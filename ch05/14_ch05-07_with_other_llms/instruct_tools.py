"""Loading SmolLM2 for the chapter 7 and DPO notebooks of this folder, answering prompts, and choosing what trains.

The book's chapter 7 helpers assume GPT-2 (a learned position table, ``<|endoftext|>`` = 50256); the model zoo's
``DecoderLM`` uses RoPE and its own end-of-text id, so answering goes through the package's KV-cache generator
(:mod:`llms_from_scratch.serving.generation`) instead, greedy as in the book.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from llms_from_scratch.ch07 import format_prompt
from llms_from_scratch.models import load_pretrained
from llms_from_scratch.serving.generation import generate, left_pad

MODEL_NAME = "smollm2-135m-instruct"


def load_smollm2(n_layers: int | None = None) -> tuple[nn.Module, Any]:
    """SmolLM2-135M-Instruct with float32 parameters, and its tokenizer.

    ``n_layers`` keeps only the first blocks (quick mode): the model is still the real checkpoint's weights, just
    shallower, so it trains fast but answers nonsense.
    """
    model, tokenizer = load_pretrained(MODEL_NAME, dtype=torch.float32)
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise TypeError("fine-tuning needs float32 parameters; load the checkpoint with dtype=torch.float32")
    if n_layers is not None:
        if not 1 <= n_layers <= len(model.trf_blocks):
            raise ValueError(f"n_layers must be between 1 and {len(model.trf_blocks)}, got {n_layers}")
        del model.trf_blocks[n_layers:]
        model.cfg = dataclasses.replace(model.cfg, n_layers=n_layers)  # the KV cache sizes itself from the config
    return model, tokenizer


def train_top_blocks(model: nn.Module, n_top: int) -> list[nn.Parameter]:
    """Freeze everything, then unfreeze the last ``n_top`` blocks and the final norm; return what trains.

    The output head stays frozen: SmolLM2 ties it to the token embedding, so training it would change the
    input embeddings too.
    """
    model.requires_grad_(False)
    for module in (*model.trf_blocks[-n_top:], model.final_norm):
        module.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable tensors by name (what a fine-tuned copy differs in), contiguous for safetensors."""
    return {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def answer(model: nn.Module, tokenizer, entries: Sequence[dict[str, Any]], max_new_tokens: int = 64,
           batch_size: int = 16) -> list[str]:
    """Greedy answers to the Alpaca prompts of ``entries``, in their order, cut at the first end-of-text."""
    model.eval()
    prompts = [tokenizer.encode(format_prompt(entry)) for entry in entries]
    eos = set(tokenizer.eos_ids)
    answers: list[str] = [""] * len(entries)
    # prompts of similar length in one batch keep the left padding (wasted work) small
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        ids, mask = left_pad([prompts[i] for i in rows], pad_id=tokenizer.eos_ids[0])  # (batch, longest) each
        out = generate(model, ids, max_new_tokens, eos_ids=tokenizer.eos_ids, attention_mask=mask)
        for r, i in enumerate(rows):
            new = out[r, ids.shape[1]:].tolist()
            end = next((k for k, t in enumerate(new) if t in eos), len(new))
            answers[i] = tokenizer.decode(new[:end]).strip()
    return answers
