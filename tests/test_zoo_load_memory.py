"""Loading keeps memory near one copy of the weights: tensors own their memory, no file mapping stays behind.

``safetensors.safe_open`` hands out views of a mapping of the whole file; a loader that kept such views kept the
whole file resident beside its converted copies (GPT-2 124M: 1.5 copies). These tests pin the reader that
replaced it: identical tensors, conversions done chunk by chunk, and, after loading, no mapping of the
checkpoint file in the process and every parameter in memory of its own.
"""

from __future__ import annotations

import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from llms_from_scratch.models import build_model, get_config, load_hf_checkpoint, safetensors_read, save_hf_checkpoint
from llms_from_scratch.models.safetensors_read import SafetensorsFile


@pytest.fixture
def mixed_file(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(37, 11, generator=g),
        "bf16": torch.randn(5, 300, generator=g).to(torch.bfloat16),
        "f16": torch.randn(64, generator=g).to(torch.float16),
        "i64": torch.arange(-5, 20),
        "bool": torch.tensor([True, False, True]),
        "fp8": torch.randn(4, 8, generator=g).to(torch.float8_e4m3fn),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    path = tmp_path / "mixed.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def test_reader_gives_the_same_tensors_as_safetensors(mixed_file):
    expected = load_file(str(mixed_file))
    with SafetensorsFile(mixed_file) as f:
        assert sorted(f.keys()) == sorted(expected)
        for name, want in expected.items():
            got = f.get_tensor(name)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert torch.equal(got.reshape(-1).view(torch.uint8), want.reshape(-1).view(torch.uint8)), name
            assert f.dtype(name) == want.dtype


@pytest.mark.parametrize("chunk_bytes", [6, 64, 1 << 24])  # several chunks (odd sizes too) and one chunk
def test_conversion_chunk_by_chunk_equals_to(mixed_file, monkeypatch, chunk_bytes):
    monkeypatch.setattr(safetensors_read, "CHUNK_BYTES", chunk_bytes)
    expected = load_file(str(mixed_file))
    with SafetensorsFile(mixed_file) as f:
        for name in ("f32", "bf16", "f16", "fp8", "scalar", "empty"):
            for dtype in (torch.float32, torch.bfloat16, torch.float16):
                assert torch.equal(f.get_tensor(name, dtype), expected[name].to(dtype)), (name, dtype)


def test_truncated_and_unknown_files_fail_clearly(mixed_file, tmp_path):
    data = mixed_file.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        SafetensorsFile(cut)
    with SafetensorsFile(mixed_file) as f, pytest.raises(KeyError, match="no tensor named 'nope'"):
        f.get_tensor("nope")


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
