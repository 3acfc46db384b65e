"""OLMo 3: the registry against the published configs, and guards that the shared exactness case
(``family_cases.py``, checked in ``test_against_transformers.py``) exercises every mechanism.

The official ``config.json`` values are written out below; the expected sizes are the parameter counts that
transformers' own class gives for them (7.30B and 32.23B).
"""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.models import build_model, get_config
from llms_from_scratch.models.olmo3 import from_hf_config, olmo3_layer_types

transformers = pytest.importorskip("transformers")
from family_cases import CASES  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

_COMMON = {
    "architectures": ["Olmo3ForCausalLM"], "model_type": "olmo3", "attention_bias": False, "hidden_act": "silu",
    "eos_token_id": 100257, "pad_token_id": 100277, "max_position_embeddings": 65536, "rms_norm_eps": 1e-06,
    "rope_theta": 500000, "sliding_window": 4096, "tie_word_embeddings": False, "vocab_size": 100278,
    "rope_scaling": {"attention_factor": 1.2079441541679836, "beta_fast": 32, "beta_slow": 1, "factor": 8.0,
                     "original_max_position_embeddings": 8192, "rope_type": "yarn"},
}
OFFICIAL = {
    "olmo3-7b": {**_COMMON, "hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32,
                 "num_hidden_layers": 32, "num_key_value_heads": 32},
    "olmo3-32b": {**_COMMON, "hidden_size": 5120, "intermediate_size": 27648, "num_attention_heads": 40,
                  "num_hidden_layers": 64, "num_key_value_heads": 8},
}
BILLIONS = {"olmo3-7b": 7.30, "olmo3-32b": 32.23}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_registry_matches_the_official_config(name):
    official = {**OFFICIAL[name], "layer_types": [
        f"{t}_attention" for t in olmo3_layer_types(OFFICIAL[name]["num_hidden_layers"])]}
    ours = get_config(name)
    assert from_hf_config(official) == ours
    reference_config = {k: v for k, v in official.items() if k not in ("model_type", "architectures")}
    with torch.device("meta"):
        reference = transformers.Olmo3ForCausalLM(transformers.Olmo3Config(**reference_config))
        model = build_model(ours)
    assert _count(model) == _count(reference)
    assert round(_count(model) / 1e9, 2) == BILLIONS[name]
    assert ours.layer_types[:4] == ("sliding", "sliding", "sliding", "full")
    # the hub file's layer_types may be left out: transformers derives the same 3:1 pattern
    assert from_hf_config(OFFICIAL[name]) == ours


@pytest.mark.parametrize("change", [
    {"sliding_rope_base": None},  # YaRN in the sliding layer too
    {"qk_norm_scope": "head"},  # per-head norms (their weights do not fit: left at 1)
    {"norm_placement": "sandwich"},  # an extra norm in front of each sub-layer
])
def test_the_shared_case_depends_on_each_mechanism(change):
    cfg = CASES["olmo3-32b"]
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    other = build_model(cfg.replace(**change)).eval()
    state = other.state_dict()
    state.update({k: v for k, v in model.state_dict().items() if k in state and state[k].shape == v.shape})
    other.load_state_dict(state)
    ids = torch.tensor([[5, 17, 300, 42, 8, 99, 123, 7, 250, 3, 11]])
    with torch.no_grad():
        assert (model(ids) - other(ids)).abs().max() > 1e-3


def test_export_refuses_what_olmo3_cannot_express():
    from llms_from_scratch.models.olmo3 import to_hf_config

    with pytest.raises(ValueError, match="share the RoPE base"):
        to_hf_config(get_config("olmo3-7b", sliding_rope_base=10_000.0))
    with pytest.raises(ValueError, match="derives head_dim"):
        to_hf_config(get_config("olmo3-7b", head_dim=64))
