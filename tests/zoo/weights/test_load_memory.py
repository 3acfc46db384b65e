"""Loading keeps memory near one copy of the weights: tensors own their memory, no file mapping stays behind.

``safetensors.safe_open`` hands out views of a mapping of the whole file; a loader that kept such views kept the
whole file resident beside its converted copies (GPT-2 124M: 1.5 copies). After loading, the checkpoint file
must not be mapped in the process any more, and every parameter must sit in memory of its own.
"""

from __future__ import annotations

import sys

import pytest
import torch

from llms_from_scratch.models import build_model, get_config, load_hf_checkpoint, save_hf_checkpoint


def _mapped_files() -> str:
    with open("/proc/self/maps") as f:
        return f.read()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_loaded_model_owns_its_memory(tmp_path, dtype):
    cfg = get_config("gpt2-124m").replace(n_layers=2, emb_dim=64, n_heads=4, vocab_size=300, context_length=32)
    torch.manual_seed(0)
    model = build_model(cfg)
    folder = save_hf_checkpoint(model, tmp_path / "gpt2")
    loaded = load_hf_checkpoint(folder, dtype=dtype)
    file = str((folder / "model.safetensors").resolve())
    assert file not in _mapped_files(), "the checkpoint file is still mapped after loading"
    # the parameters' storages hold exactly the parameters' bytes: none is a window into a larger block (a file
    # mapping, or a read that was converted and kept), though split parts may share their block
    storages = {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in loaded.parameters()}
    assert sum(storages.values()) == sum(p.numel() * p.element_size() for p in loaded.parameters())
    want = {k: (v.to(dtype) if dtype else v) for k, v in model.state_dict().items()}
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, want[name]), name
