"""Meta's original Llama layout: interleaved q/k rows are permuted on load, and ``params.json`` gives the
registered config."""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.models import get_config, load_hf_checkpoint, load_meta_llama_checkpoint
from llms_from_scratch.models.meta_llama import save_meta_llama_checkpoint

transformers = pytest.importorskip("transformers")
from zoo_reference import hf_reference  # noqa: E402


def test_meta_llama_layout_round_trip(tmp_path):
    """Meta's interleaved q/k rows are permuted on load: logits equal the Hugging Face model's."""
    cfg = get_config("llama3-8b", vocab_size=256, emb_dim=64, n_layers=2, n_heads=4, n_kv_groups=2,
                     hidden_dim=172, context_length=64)
    ref = hf_reference(cfg)
    ref.save_pretrained(tmp_path / "hf")
    ours = load_hf_checkpoint(tmp_path / "hf")
    save_meta_llama_checkpoint(ours, tmp_path / "meta")
    raw = torch.load(tmp_path / "meta" / "consolidated.00.pth", weights_only=True)
    assert not torch.equal(raw["layers.0.attention.wq.weight"], ours.trf_blocks[0].att.W_query.weight)
    meta = load_meta_llama_checkpoint(tmp_path / "meta", config=cfg)
    ids = torch.arange(20)[None]
    with torch.no_grad():
        torch.testing.assert_close(meta(ids), ref(ids).logits, atol=1e-5, rtol=1e-5)


def test_config_from_meta_params_matches_registry():
    from llms_from_scratch.models.meta_llama import config_from_params

    params = {"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
              "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0}
    assert config_from_params(params) == get_config("llama3-8b")
