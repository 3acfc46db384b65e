"""The toy PPO task of ``tests/alignment``: a one-layer GPT over an 8-token vocabulary whose reward is 1 for a
completion that starts with ``GOOD``, whatever the prompt."""

from __future__ import annotations

import torch

from llms_from_scratch.alignment.ppo import PolicyWithValueHead
from llms_from_scratch.ch04 import GPTModel

CFG = {"vocab_size": 8, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
       "qkv_bias": False}
EOS, PAD, GOOD = 6, 7, 3
PROMPTS = [[1], [2], [4], [5], [1, 2], [4, 5]]


def toy_policy(seed: int = 0, separate_value: bool = False) -> PolicyWithValueHead:
    torch.manual_seed(seed)
    return PolicyWithValueHead(GPTModel(CFG), separate_value=separate_value)


def good_reward(index: int, completion: list[int]) -> float:
    """1 for a completion that starts with GOOD, whatever the prompt."""
    return 1.0 if completion[:1] == [GOOD] else 0.0
