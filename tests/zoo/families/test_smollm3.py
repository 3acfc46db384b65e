"""SmolLM3: the registry against the published config, NoPE layers ignoring positions, and a guard that the
shared exactness case (``family_cases.py``, checked in ``test_against_transformers.py``) has a NoPE layer that
matters.

The official ``config.json`` values are written out below; the expected size is the parameter count that
transformers' own class gives for them (3.08B).
"""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.models import build_model, get_config
from llms_from_scratch.models.smollm3 import from_hf_config, to_hf_config

transformers = pytest.importorskip("transformers")
from family_cases import CASES  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

OFFICIAL = {  # SmolLM3-3B's config.json
    "architectures": ["SmolLM3ForCausalLM"], "model_type": "smollm3", "attention_bias": False,
    "bos_token_id": 128000, "eos_token_id": 128012, "pad_token_id": 128004, "hidden_act": "silu",
    "hidden_size": 2048, "intermediate_size": 11008, "max_position_embeddings": 65536, "max_window_layers": 28,
    "mlp_bias": False, "no_rope_layer_interval": 4, "no_rope_layers": [int((i + 1) % 4 != 0) for i in range(36)],
    "num_attention_heads": 16, "num_hidden_layers": 36, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 5000000.0, "sliding_window": None, "use_sliding_window": False,
    "tie_word_embeddings": True, "vocab_size": 128256,
}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_matches_the_official_config():
    ours = get_config("smollm3-3b")
    assert from_hf_config(OFFICIAL) == ours == get_config("smollm3-3b-base")
    assert ours.nope_layers == tuple(range(3, 36, 4))
    reference_config = {k: v for k, v in OFFICIAL.items() if k not in ("model_type", "architectures")}
    with torch.device("meta"):
        reference = transformers.SmolLM3ForCausalLM(transformers.SmolLM3Config(**reference_config))
        model = build_model(ours)
    assert _count(model) == _count(reference)
    assert round(_count(model) / 1e9, 2) == 3.08
    assert to_hf_config(ours)["no_rope_layers"] == OFFICIAL["no_rope_layers"]


def test_a_nope_layer_ignores_positions():
    """A single causal NoPE layer sees the last token's prefix as a set: its output at the last position does not
    change when the tokens before it are shuffled, while the same layer with RoPE does change."""
    one_layer = CASES["smollm3-3b"].replace(n_layers=1, nope_layers=(0,))
    torch.manual_seed(0)
    nope = build_model(one_layer).eval()
    rope = build_model(one_layer.replace(nope_layers=())).eval()
    rope.load_state_dict(nope.state_dict())
    ids = torch.tensor([[5, 17, 300, 42, 8, 99, 123, 7]])
    shuffled = torch.tensor([[99, 8, 42, 300, 17, 5, 123, 7]])
    with torch.no_grad():
        torch.testing.assert_close(nope(ids)[:, -1], nope(shuffled)[:, -1], atol=1e-5, rtol=1e-5)
        assert (rope(ids)[:, -1] - rope(shuffled)[:, -1]).abs().max() > 1e-3


def test_the_shared_case_depends_on_its_nope_layer():
    cfg = CASES["smollm3-3b"]
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    all_rope = build_model(cfg.replace(nope_layers=())).eval()
    all_rope.load_state_dict(model.state_dict())
    ids = torch.tensor([[5, 17, 300, 42, 8, 99, 123, 7]])
    with torch.no_grad():
        assert (model(ids) - all_rope(ids)).abs().max() > 1e-3


def test_nope_layers_must_exist():
    with pytest.raises(ValueError, match=r"nope_layers \(40,\) must be layer indices"):
        get_config("smollm3-3b", nope_layers=(40,))
