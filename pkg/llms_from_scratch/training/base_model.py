"""The model that the fine-tuning chapters start from: pretrained GPT-2, or a small stand-in when it cannot be had.

Chapters 6, 7 and appendix E fine-tune OpenAI's GPT-2 weights. Quick mode (and any machine where the weights
cannot be downloaded) uses a small randomly initialised GPT instead, so the same code runs in seconds on a CPU.
:func:`load_base_gpt` always says which model it returned and why, and ``BaseGPT.pretrained`` lets a notebook
choose hyperparameters that suit it (a random model needs a larger learning rate than a pretrained one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..ch04 import GPTModel
from ..data import AssetUnavailableError
from ..settings import is_quick

# Small enough to fine-tune in seconds on two CPU cores; GPT-2's tokenizer, so the data pipeline is unchanged.
STAND_IN_CONFIG: dict[str, Any] = {
    "vocab_size": 50257,     # GPT-2's BPE vocabulary
    "context_length": 256,   # enough for the spam messages and the short instruction examples
    "emb_dim": 64,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": True,        # like OpenAI's GPT-2, so code paths match the real model
}


@dataclass
class BaseGPT:
    model: nn.Module
    config: dict[str, Any]
    pretrained: bool  # True only for real GPT-2 weights
    note: str  # one paragraph saying which model this is and why


def load_base_gpt(model_size: str = "124M", *, quick: bool | None = None, drop_rate: float = 0.0, seed: int = 123,
                  verbose: bool = True) -> BaseGPT:
    """GPT-2 ``model_size`` with OpenAI's weights in full mode; the seeded stand-in in quick mode or offline."""
    quick = is_quick() if quick is None else quick
    if quick:
        reason = (f"Quick mode: instead of GPT-2 {model_size} this run uses a small randomly initialised GPT "
                  f"so that it finishes in seconds on a CPU.")
    else:
        from ..ch05 import gpt2_config, load_gpt2_params, load_weights_into_gpt

        try:
            params = load_gpt2_params(model_size)
        except AssetUnavailableError as exc:
            first_line = str(exc).splitlines()[0]
            reason = (f"Full mode, but the GPT-2 {model_size} weights are not available here ({first_line}), "
                      f"so this run uses a small randomly initialised GPT instead.")
        else:
            config = {**gpt2_config(model_size), "drop_rate": drop_rate}
            model = GPTModel(config)
            load_weights_into_gpt(model, params)
            model.eval()
            note = f"Loaded OpenAI's pretrained GPT-2 {model_size} weights."
            if verbose:
                print(note)
            return BaseGPT(model, config, True, note)
    config = {**STAND_IN_CONFIG, "drop_rate": drop_rate}
    torch.manual_seed(seed)
    model = GPTModel(config)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    note = (f"{reason} Stand-in: emb_dim={config['emb_dim']}, n_layers={config['n_layers']}, "
            f"n_heads={config['n_heads']}, context_length={config['context_length']}, {n_params:,} parameters, "
            f"seed {seed}. It has no pretrained knowledge: its numbers show that the code works, not what GPT-2 "
            f"reaches.")
    if verbose:
        print(note)
    return BaseGPT(model, config, False, note)
