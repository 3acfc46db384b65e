"""ch05/14_ch05-07_with_other_llms/instruct_tools.py: what trains, what is saved, and batched greedy answers that
equal one-at-a-time answers."""

import sys
from pathlib import Path

import pytest
import torch

from llms_from_scratch.ch07 import format_prompt
from llms_from_scratch.models import build_model, get_config

FOLDER = Path(__file__).resolve().parents[2] / "ch05/14_ch05-07_with_other_llms"
sys.path.insert(0, str(FOLDER))  # the helper lives beside the notebooks, not in the package

from instruct_tools import answer, train_top_blocks, trainable_state  # noqa: E402

VOCAB = 97


class CharTokenizer:
    """One id per character (ids 3..96), so any text round-trips; id 2 ends a text unless a test says otherwise."""

    def __init__(self, eos_id: int = 2) -> None:
        self.eos_ids = (eos_id,)

    def encode(self, text: str) -> list[int]:
        return [3 + ord(c) % (VOCAB - 3) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(ord("a") + i % 26) for i in ids)


ENTRIES = [
    {"instruction": "Name a color.", "input": "", "output": "Blue."},
    {"instruction": "Rewrite the sentence in passive voice.", "input": "The cat ate the fish.", "output": "x"},
    {"instruction": "Add.", "input": "2 + 2", "output": "4"},
]


@pytest.fixture()
def model():
    torch.manual_seed(0)
    cfg = get_config("smollm2-135m").replace(vocab_size=VOCAB, emb_dim=32, n_layers=3, n_heads=4, n_kv_groups=2,
                                             head_dim=8, hidden_dim=48, context_length=512)
    return build_model(cfg).eval()


def test_train_top_blocks_unfreezes_the_last_blocks_and_the_final_norm_only(model):
    params = train_top_blocks(model, 2)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith(("trf_blocks.1.", "trf_blocks.2.", "final_norm.")) for name in trainable)
    assert any(name.startswith("trf_blocks.1.") for name in trainable)
    assert not model.tok_emb.weight.requires_grad  # tied to out_head: both stay as they are
    assert sum(p.numel() for p in params) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    state = trainable_state(model)
    assert set(state) == trainable and all(t.is_contiguous() for t in state.values())


def test_batched_answers_equal_answers_one_at_a_time(model):
    tokenizer = CharTokenizer()
    together = answer(model, tokenizer, ENTRIES, max_new_tokens=6, batch_size=2)
    alone = [answer(model, tokenizer, [entry], max_new_tokens=6)[0] for entry in ENTRIES]
    assert together == alone
    assert all(len(text) == 6 for text in together)  # id 2 never came up: six characters each


def test_answers_stop_at_the_end_of_text_token(model):
    prompt = torch.tensor([CharTokenizer().encode(format_prompt(ENTRIES[0]))])
    with torch.no_grad():
        first = int(model(prompt)[0, -1].argmax())  # the greedy first token becomes the end-of-text token
    assert answer(model, CharTokenizer(eos_id=first), ENTRIES[:1], max_new_tokens=6) == [""]
