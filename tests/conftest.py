"""Fixtures shared by the tests in every folder (the helper modules they import live in ``tests/support``)."""

from __future__ import annotations

import pytest
import torch
from torch_threads import single_thread


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on one PyTorch thread for the whole module (see ``support/torch_threads.py``)."""
    with single_thread():
        yield


@pytest.fixture(scope="session")
def tiny_chat_model():
    """A random two-layer Qwen3 instruct model with the real Qwen3 tokenizer, for the chat command and the server."""
    from llms_from_scratch.models import build_model, get_config
    from llms_from_scratch.tokenizers import qwen3_tokenizer

    torch.manual_seed(0)
    cfg = get_config("qwen3-0.6b", emb_dim=32, n_layers=2, n_heads=4, n_kv_groups=2, head_dim=8, hidden_dim=48,
                     context_length=512)
    return build_model(cfg).eval(), qwen3_tokenizer()
