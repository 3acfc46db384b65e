"""Appendix E: LoRA identities (zero update at start, only A and B train, counts, merge/unmerge, adapter files)."""

import pytest
import torch
import torch.nn as nn

from llms_from_scratch.appendix_e import (
    LinearWithLoRA,
    LoRALayer,
    count_parameters,
    load_lora_adapters,
    lora_state_dict,
    merge_lora,
    replace_linear_with_lora,
    save_lora_adapters,
    unmerge_lora,
)
from llms_from_scratch.ch04 import GPTModel

CFG = {"vocab_size": 100, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0,
       "qkv_bias": True}


def lora_gpt(rank=4, alpha=8, seed=0):
    torch.manual_seed(seed)
    model = GPTModel(CFG).eval()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    model.requires_grad_(False)
    replace_linear_with_lora(model, rank=rank, alpha=alpha)
    return model, original


def randomize_adapters(model, seed=1):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".lora.B"):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)


def test_lora_layer_shapes_and_zero_start():
    layer = LoRALayer(in_dim=6, out_dim=5, rank=2, alpha=3)
    assert layer.A.shape == (6, 2) and layer.B.shape == (2, 5)
    assert torch.equal(layer(torch.randn(4, 6)), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="rank"):
        LoRALayer(6, 5, rank=0, alpha=1)


def test_wrapped_model_equals_original_at_initialisation():
    torch.manual_seed(0)
    reference = GPTModel(CFG).eval()
    model, _ = lora_gpt(seed=0)
    x = torch.randint(0, CFG["vocab_size"], (2, 10))
    assert torch.equal(model(x), reference(x))


def test_only_a_and_b_train_and_parameter_counts():
    model, _ = lora_gpt(rank=4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith((".lora.A", ".lora.B")) for n in trainable)
    # every nn.Linear got one adapter: rank * (in + out) parameters each
    linears = [m.linear for m in model.modules() if isinstance(m, LinearWithLoRA)]
    assert len(linears) == CFG["n_layers"] * 6 + 1  # q, k, v, out_proj, two FFN layers per block; the output head
    assert count_parameters(model) == sum(4 * (lin.in_features + lin.out_features) for lin in linears)
    total_before = sum(p.numel() for p in GPTModel(CFG).parameters())
    assert count_parameters(model, trainable_only=False) == total_before + count_parameters(model)

    # a training step changes A and B only
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model(torch.randint(0, 100, (2, 8))).sum().backward()
    optimizer.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.endswith((".lora.A", ".lora.B")) for k in changed)


def test_merge_equals_unmerged_and_unmerge_restores_weights():
    # float64, so the identities are checked far below float32 rounding
    model, original = lora_gpt()
    randomize_adapters(model)
    model.double()
    original = {k: v.double() for k, v in original.items()}
    x = torch.randint(0, CFG["vocab_size"], (2, 12))
    unmerged_out = model(x)
    merge_lora(model)
    torch.testing.assert_close(model(x), unmerged_out, rtol=1e-10, atol=1e-10)
    base = {k.replace(".linear.", "."): v for k, v in model.state_dict().items() if ".lora." not in k}
    assert any(not torch.equal(base[k], original[k]) for k in original)  # merging changed the base weights
    merge_lora(model)  # merging twice is a no-op
    torch.testing.assert_close(model(x), unmerged_out, rtol=1e-10, atol=1e-10)
    unmerge_lora(model)
    base = {k.replace(".linear.", "."): v for k, v in model.state_dict().items() if ".lora." not in k}
    for key, value in original.items():
        torch.testing.assert_close(base[key], value, rtol=0, atol=1e-12)  # equal up to float rounding
    torch.testing.assert_close(model(x), unmerged_out, rtol=1e-10, atol=1e-10)


def test_adapter_only_save_and_load(tmp_path):
    model, _ = lora_gpt()
    randomize_adapters(model)
    x = torch.randint(0, CFG["vocab_size"], (1, 9))
    path = save_lora_adapters(model, tmp_path / "adapters.safetensors")
    assert set(lora_state_dict(model)) == {k for k in model.state_dict() if ".lora." in k}

    fresh, _ = lora_gpt(seed=0)  # same base weights, zero adapters
    assert not torch.equal(fresh(x), model(x))
    merge_lora(fresh)  # loading unmerges first, so an old merged update cannot linger
    load_lora_adapters(fresh, path)
    assert torch.equal(fresh(x), model(x))

    other_rank, _ = lora_gpt(rank=2)
    with pytest.raises(ValueError, match="different rank"):
        load_lora_adapters(other_rank, path)
    other_alpha, _ = lora_gpt(alpha=16)
    with pytest.raises(ValueError, match="alpha"):
        load_lora_adapters(other_alpha, path)
    with pytest.raises(ValueError, match="no LoRA layers"):
        load_lora_adapters(GPTModel(CFG), path)


def test_replace_is_recursive_and_idempotent():
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 2)))
    replace_linear_with_lora(model, rank=1, alpha=1)
    replace_linear_with_lora(model, rank=1, alpha=1)  # wrapped layers are not wrapped again
    assert isinstance(model[0], LinearWithLoRA) and isinstance(model[1][1], LinearWithLoRA)
    assert isinstance(model[0].linear, nn.Linear)


def test_notebook_definitions_agree_with_package():
    from pathlib import Path

    from notebook_defs import load_notebook_definitions

    nb = load_notebook_definitions(Path(__file__).parents[2] / "appendix-E/01_main-chapter-code/appendix-E.ipynb")
    torch.manual_seed(0)
    nb_model = nb.replace_linear_with_lora(GPTModel(CFG), rank=4, alpha=8)
    pkg_model, _ = lora_gpt(rank=4, alpha=8, seed=0)
    # same modules in the same order, so the same seed gives the same A matrices and the same state dict
    assert nb_model.state_dict().keys() == pkg_model.state_dict().keys()
    pkg_model.load_state_dict(nb_model.state_dict())
    randomize_adapters(nb_model)
    randomize_adapters(pkg_model)
    x = torch.randint(0, CFG["vocab_size"], (2, 7))
    assert torch.equal(nb_model(x), pkg_model(x))
    torch.manual_seed(5)
    nb_layer = nb.LoRALayer(6, 5, rank=2, alpha=3)
    torch.manual_seed(5)
    pkg_layer = LoRALayer(6, 5, rank=2, alpha=3)
    assert torch.equal(nb_layer.A, pkg_layer.A) and torch.equal(nb_layer.B, pkg_layer.B)
