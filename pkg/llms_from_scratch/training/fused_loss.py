"""Chapter 5's training loss for the book's ``GPTModel``, with the output head fused into the cross-entropy.

The loop asks the model for its final hidden states (what the output head receives), then hands them, with the
head's weight and bias, to :func:`~llms_from_scratch.nn.head_loss.head_cross_entropy`, which computes the same
mean loss and its gradients without the ``(batch * tokens, vocab)`` logits matrix:

>>> hidden = gpt_hidden_states(model, inputs)                               # (batch, tokens, emb_dim)
>>> loss = head_cross_entropy(hidden.flatten(0, 1), model.out_head.weight, model.out_head.bias, targets.flatten())

The model is not changed for this: no module is swapped and nothing is hooked, so the same ``model(x)`` still
returns logits everywhere else (evaluation, generation). :func:`lm_loss` is those two lines;
``calc_loss_batch_fused`` is chapter 5's ``calc_loss_batch`` with them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..nn.head_loss import head_cross_entropy

__all__ = ["calc_loss_batch_fused", "gpt_hidden_states", "lm_loss"]


def gpt_hidden_states(model: nn.Module, in_idx: torch.Tensor) -> torch.Tensor:
    """What chapter 4's ``GPTModel.forward`` computes before its output head: ``(batch, num_tokens, emb_dim)``.

    The same modules in the same order (embeddings, dropout, blocks, final norm); ``tests/training/test_head_loss.py``
    checks that the head applied to the result gives ``model(in_idx)``. A ``torch.compile`` or DDP wrapper
    passes attribute access through to the model, so it runs eagerly here; compile this function instead
    (``torch.compile(functools.partial(gpt_hidden_states, model))``).
    """
    _, seq_len = in_idx.shape
    context_length = model.pos_emb.num_embeddings
    if seq_len > context_length:
        raise ValueError(f"the input has {seq_len} tokens but the model's context_length is {context_length}; "
                         f"keep only the last {context_length} tokens")
    x = model.tok_emb(in_idx) + model.pos_emb(torch.arange(seq_len, device=in_idx.device))  # (batch, seq, emb)
    x = model.drop_emb(x)
    x = model.trf_blocks(x)
    return model.final_norm(x)


def lm_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *,
            hidden_states: Callable[[torch.Tensor], torch.Tensor] | None = None, head: nn.Linear | None = None,
            chunk_rows: int | None = None) -> torch.Tensor:
    """Chapter 5's mean next-token cross-entropy of a ``GPTModel``, computed with the output head fused in.

    ``hidden_states`` replaces :func:`gpt_hidden_states` (e.g. a compiled version of it, or another model's
    final hidden states); ``head`` is the linear layer that turns them into logits (default: the chapter-4
    model's ``out_head``).
    """
    hidden = hidden_states(inputs) if hidden_states is not None else gpt_hidden_states(model, inputs)
    head = head if head is not None else model.out_head
    return head_cross_entropy(hidden.flatten(0, 1), head.weight, head.bias, targets.flatten(), chunk_rows=chunk_rows)


def calc_loss_batch_fused(input_batch: torch.Tensor, target_batch: torch.Tensor, model: nn.Module,
                          device: torch.device | str) -> torch.Tensor:
    """Drop-in for ``ch05.calc_loss_batch`` (same arguments, same loss) that uses :func:`lm_loss`."""
    return lm_loss(model, input_batch.to(device), target_batch.to(device))
