"""Gemma 3: the registry against the published configs, the image-text checkpoint layout, and guards that the
shared exactness case (``family_cases.py``, checked in ``test_against_transformers.py``) exercises every mechanism.

The official ``config.json`` values are written out below (the 4B-27B files are image-text configs whose
``text_config`` lists only what differs from transformers' defaults); the expected sizes are the non-embedding
parameter counts of the Gemma 3 technical report (millions).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from llms_from_scratch.models import build_model, get_config, load_hf_checkpoint
from llms_from_scratch.models.gemma3 import from_hf_config

transformers = pytest.importorskip("transformers")
from family_cases import CASES  # noqa: E402
from zoo_reference import hf_reference  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

_LINEAR_8 = {"factor": 8.0, "rope_type": "linear"}
OFFICIAL = {
    "gemma3-1b": {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "attention_bias": False,
        "attn_logit_softcapping": None, "final_logit_softcapping": None, "bos_token_id": 2, "eos_token_id": 1,
        "pad_token_id": 0, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152,
        "intermediate_size": 6912, "max_position_embeddings": 32768, "num_attention_heads": 4,
        "num_hidden_layers": 26, "num_key_value_heads": 1, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000, "rope_scaling": None, "rope_theta": 1000000, "sliding_window": 512,
        "sliding_window_pattern": 6, "vocab_size": 262144,
    },
    "gemma3-4b": {"model_type": "gemma3", "text_config": {
        "hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text", "num_hidden_layers": 34,
        "rope_scaling": _LINEAR_8, "sliding_window": 1024}},
    "gemma3-12b": {"model_type": "gemma3", "text_config": {
        "hidden_size": 3840, "intermediate_size": 15360, "model_type": "gemma3_text", "num_attention_heads": 16,
        "num_hidden_layers": 48, "num_key_value_heads": 8, "rope_scaling": _LINEAR_8, "sliding_window": 1024}},
    "gemma3-27b": {"model_type": "gemma3", "text_config": {
        "head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504, "model_type": "gemma3_text",
        "num_attention_heads": 32, "num_hidden_layers": 62, "num_key_value_heads": 16, "query_pre_attn_scalar": 168,
        "rope_scaling": _LINEAR_8, "sliding_window": 1024}},
}
NON_EMBEDDING_MILLIONS = {"gemma3-1b": 698, "gemma3-4b": 3209, "gemma3-12b": 10759, "gemma3-27b": 25600}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_registry_matches_the_official_config(name):
    official = OFFICIAL[name]
    ours = get_config(name)
    assert from_hf_config(official) == ours
    assert get_config(f"{name}-it") == ours
    text = {k: v for k, v in official.get("text_config", official).items() if k not in ("model_type", "architectures")}
    with torch.device("meta"):
        reference = transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**text))
        model = build_model(ours)
    assert _count(model) == _count(reference)
    non_embedding = _count(model) - ours.vocab_size * ours.emb_dim
    assert round(non_embedding / 1e6) == NON_EMBEDDING_MILLIONS[name]
    kinds = ours.layer_types
    assert kinds[5] == "full" and kinds.count("sliding") == len(kinds) - len(kinds) // 6


def test_image_text_checkpoint_layout_loads_its_language_model(tmp_path):
    """The 4B-27B repositories: an image-text config around the text settings, the language model under
    "language_model.", and a vision tower beside it, which is skipped."""
    cfg = CASES["gemma3-4b"]
    ref = hf_reference(cfg)
    ref.save_pretrained(tmp_path / "text")
    text_config = json.loads((tmp_path / "text" / "config.json").read_text())
    state = load_file(str(tmp_path / "text" / "model.safetensors"))
    hub = {f"language_model.{k}": v for k, v in state.items()}
    hub["vision_tower.vision_model.post_layernorm.weight"] = torch.ones(8)
    hub["multi_modal_projector.mm_input_projection_weight"] = torch.zeros(8, cfg.emb_dim)
    folder = tmp_path / "hub"
    folder.mkdir()
    save_file(hub, str(folder / "model.safetensors"), metadata={"format": "pt"})
    wrapper = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
               "text_config": text_config, "vision_config": {"model_type": "siglip_vision_model"}}
    (folder / "config.json").write_text(json.dumps(wrapper))
    ours = load_hf_checkpoint(folder)
    assert ours.cfg == cfg
    ids = torch.tensor([[5, 17, 300, 42, 8, 99, 123, 7, 250, 3, 11]])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), ref(ids).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("change", [
    {"sliding_rope_base": None},  # local layers rotating with the global base and scaling
    {"rope_scaling": None},  # global layers without the linear interpolation
    {"query_pre_attn_scalar": None},  # 1/sqrt(head_dim) instead
    {"scale_embeddings": False},
    {"norm_placement": "pre"},  # state dict differs: only the parameters both share are copied
])
def test_the_shared_case_depends_on_each_mechanism(change):
    """Each mechanism changes the logits of the shrunk case, so ``test_against_transformers`` checks it."""
    cfg = CASES["gemma3-4b"]
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    other = build_model(cfg.replace(**change)).eval()
    other.load_state_dict(model.state_dict(), strict=False)
    ids = torch.tensor([[5, 17, 300, 42, 8, 99, 123, 7, 250, 3, 11]])
    with torch.no_grad():
        assert (model(ids) - other(ids)).abs().max() > 1e-3


def test_sliding_rope_needs_a_window():
    with pytest.raises(ValueError, match="sliding_rope_base is set but no layer slides"):
        get_config("gemma3-1b", sliding_window=None, layer_types=None)


def test_unit_offset_rmsnorm_matches_gemma_in_bfloat16():
    """(1 + w) RMSNorm multiplies in float32 before casting back, as Gemma's does; in bf16 the order shows."""
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm

    from llms_from_scratch.nn import RMSNorm

    torch.manual_seed(0)
    ours, ref = RMSNorm(64, eps=1e-6, unit_offset=True), Gemma3RMSNorm(64, eps=1e-6)
    with torch.no_grad():
        ours.scale.copy_(torch.randn(64))
        ref.weight.copy_(ours.scale)
    ours, ref = ours.to(torch.bfloat16), ref.to(torch.bfloat16)
    x = (3 * torch.randn(4, 7, 64)).to(torch.bfloat16)
    assert torch.equal(ours(x), ref(x))


def test_linear_rope_scaling_matches_transformers():
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from llms_from_scratch.nn import RopeScaling, rope_inv_freq

    hf = transformers.Gemma3TextConfig(head_dim=128, rope_parameters={
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
        "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})
    expected, _ = ROPE_INIT_FUNCTIONS["linear"](hf, "cpu", layer_type="full_attention")
    got, factor = rope_inv_freq(128, 1e6, RopeScaling("linear", factor=8.0))
    torch.testing.assert_close(got, expected.float(), atol=0, rtol=1e-6)
    assert factor == 1.0
