"""Qwen3.5: what the shared family recipe (``test_against_transformers.py``) does not reach.

The registered sizes against the published totals, ``config.json`` in both layouts (flat, as
``Qwen3_5ForCausalLM`` saves it, and nested under ``text_config``, as the released vision-language checkpoints
store it) against transformers' defaults, and the released tensor layout (``model.language_model.``, with a
vision tower and an MTP layer beside it).
"""

from __future__ import annotations

import json

import pytest
import torch
from family_cases import CASES
from zoo_reference import random_model

from llms_from_scratch.models import get_config, load_hf_checkpoint, save_hf_checkpoint
from llms_from_scratch.models.memory import parameter_counts
from llms_from_scratch.models.qwen3_5 import CONFIGS, from_hf_config, to_hf_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name, total, active", [
    # the model names: billions of parameters stored and (for MoE) active per token; the text model holds all
    # but the vision tower's ~0.1-0.4B, so the totals are compared to the nearest billion
    ("qwen3.5-9b", 9, 9), ("qwen3.5-27b", 27, 27), ("qwen3.5-35b-a3b", 35, 3), ("qwen3.5-122b-a10b", 122, 10),
    ("qwen3.5-397b-a17b", 396, 17),
])
def test_registered_sizes_are_the_published_ones(name, total, active):
    counts = parameter_counts(get_config(name))
    assert (round(counts["total"] / 1e9), round(counts["active"] / 1e9)) == (total, active)


def test_small_size_ties_its_head_and_moe_sizes_have_a_gated_shared_expert():
    assert get_config("qwen3.5-0.8b").tie_embeddings and get_config("qwen3.5-0.8b").moe is None
    for name in ("qwen3.5-35b-a3b", "qwen3.5-122b-a10b", "qwen3.5-397b-a17b"):
        moe = get_config(name).moe
        assert moe.shared_expert_gate and moe.n_shared_experts == 1 and moe.norm_topk_prob
    assert all(cfg.layer_types.count("full") * 4 == cfg.n_layers for cfg in CONFIGS.values())


def test_config_json_round_trip_and_transformers_defaults():
    transformers = pytest.importorskip("transformers")
    for cfg in CONFIGS.values():
        assert from_hf_config(to_hf_config(cfg)) == cfg
        nested = {"model_type": "qwen3_5_moe" if cfg.moe else "qwen3_5", "text_config": to_hf_config(cfg)}
        assert from_hf_config(nested) == cfg
    # transformers documents its defaults as the 9B (dense) and 35B-A3B (MoE) architectures
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
            "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
            "linear_conv_kernel_dim", "layer_types", "vocab_size")
    for name, config_class, extra_keys in (
        ("qwen3.5-9b", transformers.Qwen3_5TextConfig, ("intermediate_size",)),
        ("qwen3.5-35b-a3b", transformers.Qwen3_5MoeTextConfig,
         ("num_experts", "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size")),
    ):
        ours = config_class(**{k: v for k, v in to_hf_config(get_config(name)).items() if k != "model_type"})
        default = config_class()
        for key in keys + extra_keys:
            assert getattr(ours, key) == getattr(default, key), (name, key)
        assert ours.rope_parameters["partial_rotary_factor"] == 0.25


@pytest.mark.parametrize("name", ["qwen3.5-27b", "qwen3.5-35b-a3b"])
def test_released_vision_language_layout_loads_the_text_model(name, tmp_path):
    """The released checkpoints keep the text model under ``model.language_model.``, a vision tower and an
    MTP layer beside it, and nest the text settings: the loader reads the text model and leaves the rest."""
    from safetensors.torch import load_file, save_file

    cfg = CASES[name]
    model = random_model(cfg)
    flat = save_hf_checkpoint(model, tmp_path / "flat")
    tensors = load_file(flat / "model.safetensors")
    released = {(k.replace("model.", "model.language_model.", 1) if k.startswith("model.") else k): v
                for k, v in tensors.items()}
    released["model.visual.patch_embed.proj.weight"] = torch.zeros(4, 3)
    released["mtp.fc.weight"] = torch.zeros(4, 4)
    folder = tmp_path / "released"
    folder.mkdir()
    save_file(released, folder / "model.safetensors")
    text = json.loads((flat / "config.json").read_text())
    nested = {"model_type": "qwen3_5_moe" if cfg.moe else "qwen3_5", "architectures": ["Qwen3_5ForConditionalGeneration"],
              "text_config": text, "vision_config": {"depth": 1}}
    (folder / "config.json").write_text(json.dumps(nested))
    loaded = load_hf_checkpoint(folder)
    assert loaded.cfg == cfg
    ids = torch.randint(0, cfg.vocab_size, (1, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(ids), model(ids))


@pytest.mark.parametrize("name", ["qwen3.5-27b", "qwen3.5-35b-a3b"])
def test_cli_generate_on_a_qwen3_5_folder(name, tmp_path, capsys):
    """The family reaches the command line through the registry: ``generate`` on a saved folder with a Qwen-style
    tokenizer prints what ``generation.generate`` decodes (the chat template applied, up to an end id)."""
    pytest.importorskip("tokenizers")
    from tokenizer_files import write_tokenizer_folder

    from llms_from_scratch.cli import main
    from llms_from_scratch.generation import generate
    from llms_from_scratch.tokenizers import tokenizer_json_tokenizer

    vocab = write_tokenizer_folder(tmp_path, "qwen")
    save_hf_checkpoint(random_model(CASES[name].replace(vocab_size=vocab)), tmp_path)
    tokenizer = tokenizer_json_tokenizer(tmp_path)
    prompt = "Hello, 123 world!"
    assert main(["generate", "-m", str(tmp_path), "-p", prompt, "--max-new-tokens", "8", "--device", "cpu",
                 "--dtype", "float32"]) == 0
    ids = tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": prompt}]))
    eos = set(tokenizer.eos_ids)
    out = generate(load_hf_checkpoint(tmp_path), torch.tensor([ids]), 8, eos_ids=eos)[0, len(ids):].tolist()
    out = out[: next((i for i, t in enumerate(out) if t in eos), len(out))]
    expected = tokenizer.decode(out, skip_special=True)
    assert expected.strip()
    assert capsys.readouterr().out == expected + "\n"
