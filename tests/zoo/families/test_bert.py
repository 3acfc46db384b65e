"""BERT: the encoder with its masked-LM head equals `transformers` on random weights, and the real
all-MiniLM-L6-v2 checkpoint gives the same hidden states as `transformers` ``BertModel``."""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.models import get_config, load_hf_checkpoint, load_pretrained, resolve, save_hf_checkpoint

transformers = pytest.importorskip("transformers")
from zoo_reference import hf_reference  # noqa: E402

CFG = get_config("bert-base-uncased", vocab_size=512, emb_dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                 context_length=64)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    ref = hf_reference(CFG, masked_lm=True)
    folder = tmp_path_factory.mktemp("bert")
    ref.save_pretrained(folder)
    return ref, load_hf_checkpoint(folder)


def _batch():
    ids = torch.tensor([[101, 7, 8, 9, 10, 11, 102], [101, 40, 41, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0]])
    return ids, mask, types


def test_mlm_logits_match(pair):
    ref, ours = pair
    assert ours.cfg == CFG
    ids, mask, types = _batch()
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        got = ours(ids, attention_mask=mask, token_type_ids=types)
    real = mask.bool()
    assert expected.abs().max() > 1.0
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


def test_save_round_trip_in_transformers(pair, tmp_path):
    ref, ours = pair
    save_hf_checkpoint(ours, tmp_path)
    reloaded = transformers.AutoModelForMaskedLM.from_pretrained(
        tmp_path, attn_implementation="eager", dtype=torch.float32).eval()
    ids, mask, types = _batch()
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=ids, attention_mask=mask, token_type_ids=types).logits,
                           ref(input_ids=ids, attention_mask=mask, token_type_ids=types).logits)


def test_legacy_hub_layout_loads(pair, tmp_path):
    """Old hub files name LayerNorm parameters gamma/beta and carry pooler and next-sentence heads."""
    from safetensors.torch import save_file

    ref, ours = pair
    save_hf_checkpoint(ours, tmp_path)
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in ref.state_dict().items() if not k.startswith("cls.predictions.decoder")}
    state["bert.pooler.dense.weight"] = torch.zeros(64, 64)
    state["cls.seq_relationship.weight"] = torch.zeros(2, 64)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    legacy = load_hf_checkpoint(tmp_path)
    ids, mask, types = _batch()
    with torch.no_grad():
        assert torch.equal(legacy(ids, mask, types), ours(ids, mask, types))


@pytest.mark.slow
def test_minilm_hidden_states_match_transformers():
    model, tokenizer = load_pretrained("all-minilm-l6-v2")
    _, folder = resolve("all-minilm-l6-v2")
    ref = transformers.BertModel.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
    sentences = ["The capital of France is Paris.", "A man is playing a guitar on stage, and the crowd sings."]
    encoded = [tokenizer.encode(s)[0] for s in sentences]
    longest = max(map(len, encoded))
    ids = torch.tensor([e + [0] * (longest - len(e)) for e in encoded])
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        got = model.encode(ids, attention_mask=mask)
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)
    assert model.cfg == get_config("all-minilm-l6-v2")
