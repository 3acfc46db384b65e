"""A damaged checkpoint folder gets one line that names the file and the fix (issue 15, defect 17), and saving
over a sharded checkpoint replaces it instead of leaving the old shards to be loaded (defect 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llms_from_scratch.models import build_model, get_config, load_hf_checkpoint, read_hf_config, save_hf_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(vocab_size=128, emb_dim=32, n_layers=2, n_heads=4, n_kv_groups=2, hidden_dim=48, context_length=64)


def tiny_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(get_config("qwen3-0.6b", **SMALL)).eval()


@pytest.fixture
def folder(tmp_path) -> Path:
    save_hf_checkpoint(tiny_model(0), tmp_path)
    return tmp_path


def load_error(path: Path) -> str:
    """The message ``load_hf_checkpoint`` fails with, which must be a ValueError (the CLI's one-line kind)."""
    with pytest.raises(ValueError) as info:
        load_hf_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- defect 17 --------------------------------------------------------------------------------------------------

def test_truncated_safetensors_names_the_file(folder):
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    message = load_error(folder)
    assert message.startswith(f"{weights} is not a readable safetensors file (")
    assert "truncated or damaged: download or save it again" in message


def test_config_that_is_not_json_names_the_file(folder):
    config = folder / "config.json"
    config.write_text('{"model_type": "qwen3", "hidden_size": 32,', encoding="utf-8")  # cut off mid-file
    message = load_error(folder)
    assert message.startswith(f"{config} is not valid JSON (")
    assert message.endswith("use the config.json that came with the checkpoint")
    with pytest.raises(ValueError, match="is not valid JSON"):
        read_hf_config(config)


def test_config_missing_an_entry_names_the_file_and_the_entry(folder):
    config = folder / "config.json"
    raw = json.loads(config.read_text(encoding="utf-8"))
    del raw["hidden_size"]
    config.write_text(json.dumps(raw), encoding="utf-8")
    assert load_error(folder) == (f"{config} lacks 'hidden_size', which a qwen3 config needs; use the config.json "
                                  "that came with the checkpoint")


def test_integer_tensor_names_the_file_and_the_tensor(folder):
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    tensors["model.norm.weight"] = tensors["model.norm.weight"].to(torch.int64)
    save_file(tensors, weights)
    message = load_error(folder)
    assert message.startswith(f"{weights}: tensor 'model.norm.weight' is stored as torch.int64, but model weights "
                              "are floating point")


def test_damaged_index_names_the_file(folder):
    (folder / "model.safetensors.index.json").write_text("not json", encoding="utf-8")
    assert load_error(folder).startswith(f"{folder / 'model.safetensors.index.json'} is not valid JSON (")


# --- defect 10 --------------------------------------------------------------------------------------------------

def shard_by_hand(folder: Path) -> list[str]:
    """Turn the single-file checkpoint in ``folder`` into two shards and an index, as a large model is stored."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, members in shards.items():
        save_file({n: tensors[n] for n in members}, folder / shard, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {n: shard for shard, members in shards.items() for n in members}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    (folder / "model.safetensors").unlink()
    return sorted(shards)


def test_saving_over_a_sharded_checkpoint_replaces_it(folder):
    old, new = tiny_model(0), tiny_model(1)
    shard_by_hand(folder)
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")  # not the model's: must stay
    ids = torch.arange(12)[None]
    with torch.no_grad():
        torch.testing.assert_close(load_hf_checkpoint(folder)(ids), old(ids))  # the sharded folder loads

        save_hf_checkpoint(new, folder)
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
        torch.testing.assert_close(load_hf_checkpoint(folder)(ids), new(ids))


def test_integer_weights_from_any_loader_get_a_clear_error():
    """Loaders that build the state themselves (Meta's layout, GGUF) share the check before assignment."""
    from llms_from_scratch.models import WeightMismatchError
    from llms_from_scratch.models.checkpoint_io import load_state_dict_into

    model = tiny_model(0)
    state = {name: t.detach().clone() for name, t in model.state_dict().items()}
    state["final_norm.scale"] = state["final_norm.scale"].to(torch.int32)
    with pytest.raises(WeightMismatchError, match=r"stores final_norm.scale \(torch.int32\) as integers, but model "
                                                   "weights are floating point"):
        load_state_dict_into(model, state)


def test_weights_that_do_not_fit_name_the_folder(folder):
    from llms_from_scratch.models import WeightMismatchError

    wrong = get_config("qwen3-0.6b", **{**SMALL, "hidden_dim": 64})
    with pytest.raises(WeightMismatchError, match=rf"^{folder}: the checkpoint does not fit the qwen3 config"):
        load_hf_checkpoint(folder, config=wrong)
    with pytest.raises(NotADirectoryError, match="is a file; pass the folder that holds it and its config.json"):
        load_hf_checkpoint(folder / "model.safetensors")
