"""Fixtures for the serving tests: a small chat model in a checkpoint folder, and ``llms-from-scratch serve`` on it.

``tiny_folder`` is a Hugging Face checkpoint folder (a random Qwen3-architecture chat model and a byte-level BPE
tokenizer trained on a small corpus, ChatML template) whose output rows for the special tokens are zero: greedy
decoding then never picks an end-of-sequence token, so a request for N tokens really generates N. ``server``
starts ``serve`` on it (see ``server_process.py``); every process started is stopped after its test.
"""

from __future__ import annotations

import pytest
import torch
from server_process import CONTEXT, MODEL_ID, TIGHT, ServerProcess
from zoo_reference import random_model

from llms_from_scratch.models import get_config, load_hf_checkpoint, save_hf_checkpoint
from llms_from_scratch.serving.generation import TextStream, generate
from llms_from_scratch.tokenizers import tokenizer_json_tokenizer


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """(folder, tokenizer) of the small chat model; the folder is named ``MODEL_ID``."""
    pytest.importorskip("tokenizers")  # trains the small tokenizer
    from tokenizer_files import write_tokenizer_folder

    folder = tmp_path_factory.mktemp("models") / MODEL_ID
    folder.mkdir()
    vocab = write_tokenizer_folder(folder, "qwen")
    cfg = get_config("qwen3-0.6b", emb_dim=128, n_layers=4, n_heads=4, n_kv_groups=2, head_dim=32, hidden_dim=256,
                     context_length=CONTEXT, vocab_size=vocab, tie_embeddings=False)
    model = random_model(cfg)
    tokenizer = tokenizer_json_tokenizer(folder)
    with torch.no_grad():  # no special token can win an argmax: greedy replies run to max_tokens
        for token_id in tokenizer.special_tokens.values():
            model.out_head.weight[token_id] = 0.0
    save_hf_checkpoint(model, folder)
    return folder, tokenizer


@pytest.fixture(scope="session")
def expected_reply(tiny_folder):
    """``expected_reply(messages, n)``: the greedy text of the folder's model, computed in this process."""
    folder, tokenizer = tiny_folder
    model = load_hf_checkpoint(folder)

    def reply(messages: list[dict], n: int) -> str:
        ids = torch.tensor([tokenizer.encode_chat(messages)])
        text = TextStream(tokenizer)  # as the server turns tokens into text
        return "".join(text.push(t) for t in generate(model, ids, n)[0, ids.shape[1]:].tolist())

    return reply


@pytest.fixture
def server(tiny_folder, tmp_path):
    """``server(*extra_args)`` starts ``serve -m FOLDER`` with those arguments; all are stopped afterwards."""
    started = []

    def start(*args: str) -> ServerProcess:
        process = ServerProcess(["-m", str(tiny_folder[0]), *args], tmp_path / f"server{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def tight_server(tiny_folder, tmp_path_factory):
    """One server with :data:`TIGHT` limits for a whole test module."""
    process = ServerProcess(["-m", str(tiny_folder[0]), *TIGHT], tmp_path_factory.mktemp("log") / "server.log")
    yield process
    process.stop()
