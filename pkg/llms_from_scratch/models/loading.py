"""Build models from configs, load Hugging Face checkpoints into them, and export them back.

Loading keeps peak memory near one copy of the weights: the model is created on the ``meta`` device (shapes
only, no storage), each checkpoint tensor is read once into memory of its own (see
:func:`~.checkpoint_io.tensor_reader`), converted and then *assigned* as the parameter, so no second, randomly
initialized copy ever exists. ``ch04/03_kv-cache/measure_memory.py`` measures it.

Which family a config or a ``config.json`` belongs to comes from :mod:`.families`; what is specific to a family
(its weight map, ``config.json`` readers, checkpoint hooks, model class) is on its :class:`~.family.Family`.
Modules stored beside the model in the same files (DeepSeek's multi-token-prediction layer) are written through
:class:`CheckpointExtra`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from .checkpoint_io import (
    INDEX_FILE,
    SINGLE_FILE,
    atomic_path,
    cast_state,
    check_device_dtype,
    checkpoint_fp32_names,
    expected_shapes,
    fp32_names,
    load_state_dict_into,
    open_safetensors,
    read_index,
    safetensors_files,
    tensor_reader,
    tied_names,
)
from .config import ModelConfig
from .families import family_for_model_type, get_family
from .weights import WeightMismatchError, convert_to_hf, convert_to_ours

HEAD_PREFIXES = ("lm_head.", "cls.")  # heads sit beside the base model's prefix, never inside it


class CheckpointExtra(Protocol):
    """A module saved into the main model's checkpoint files (DeepSeek-V3's MTP layer, ``mtp.py``)."""

    def hf_tensors(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """Its tensors under their checkpoint names, floating ones in ``dtype`` (None: as they are)."""

    def hf_config_updates(self) -> dict[str, Any]:
        """The ``config.json`` entries that announce it (e.g. ``{"num_nextn_predict_layers": 1}``)."""

    def check_belongs_to(self, model: nn.Module) -> None:
        """Raise ``ValueError`` unless it was built for ``model`` (same config)."""


def build_model(
    cfg: ModelConfig, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None, **kwargs: Any
) -> nn.Module:
    """A randomly initialized model for ``cfg``: its family's ``model_class`` (``DecoderLM``; BERT: ``EncoderMLM``)."""
    check_device_dtype(device, dtype)
    model = get_family(cfg.family).model_class(cfg, **kwargs)
    if dtype is not None or device is not None:
        model = model.to(device=device, dtype=dtype)
    return model


def read_hf_config(path: str | os.PathLike) -> ModelConfig:
    """The :class:`ModelConfig` described by a Hugging Face ``config.json`` (a file or the folder holding it)."""
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no config.json at {file}; a Hugging Face checkpoint folder holds one")
    fix = "use the config.json that came with the checkpoint"
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file} is not valid JSON ({exc}); {fix}") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise ValueError(f"{file} has no 'model_type', so its family is unknown; {fix}")
    family = family_for_model_type(raw["model_type"])
    try:
        return family.from_hf_config(raw)
    except KeyError as exc:
        raise ValueError(f"{file} lacks {exc.args[0]!r}, which a {raw['model_type']} config needs; {fix}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{file}: {exc}; {fix}") from None


def load_hf_checkpoint(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    config: ModelConfig | None = None,
) -> nn.Module:
    """Load a Hugging Face checkpoint folder (``config.json`` + safetensors, sharded or not) into our model.

    ``dtype`` converts every floating-point tensor (default: keep the stored dtype). ``config`` overrides
    the folder's ``config.json``. Every checkpoint tensor must find a place in the model and every model
    tensor must be provided, with matching shapes; otherwise a :class:`WeightMismatchError` lists them all.
    """
    check_device_dtype(device, dtype)
    directory = Path(path)
    if directory.is_file():
        raise NotADirectoryError(f"{directory} is a file; pass the folder that holds it and its config.json")
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint folder {directory} does not exist")
    cfg = config or read_hf_config(directory)
    files = safetensors_files(directory)
    family = get_family(cfg.family)
    handles = open_safetensors(files)
    is_mlm = cfg.family != "bert" or any(n.startswith("cls.") for n in handles)
    with torch.device("meta"):
        model = build_model(cfg, mlm_head=is_mlm) if cfg.family == "bert" else build_model(cfg)

    keep = checkpoint_fp32_names(model, family.weight_map, cfg, family.strip_prefixes)
    get_tensor = tensor_reader(handles, dtype, keep)
    names = list(handles)
    try:
        if family.prepare_checkpoint is not None:
            names, get_tensor = family.prepare_checkpoint(names, get_tensor, cfg)
        state = convert_to_ours(
            names, get_tensor, family.weight_map, cfg, expected_shapes(model),
            strip_prefixes=family.strip_prefixes, shared=tied_names(model),
        )
        model = load_state_dict_into(model, state)
    except ValueError as exc:  # WeightMismatchError included: say which checkpoint, unless the message does
        if str(directory) in str(exc):
            raise
        kind = WeightMismatchError if isinstance(exc, WeightMismatchError) else ValueError
        raise kind(f"{directory}: {exc}") from None
    return model.to(device).eval()


def save_hf_checkpoint(model: nn.Module, directory: str | os.PathLike, *, dtype: torch.dtype | None = None,
                       extras: Iterable[CheckpointExtra] = ()) -> Path:
    """Write ``model`` as a Hugging Face checkpoint folder (``config.json`` + ``model.safetensors``).

    ``transformers`` loads the folder with ``AutoModelForCausalLM`` / ``AutoModelForMaskedLM`` and computes
    the same logits. ``dtype`` converts floating tensors (buffers that stay float32, such as DeepSeek's
    correction bias, excepted). ``extras`` are modules stored in the same files, such as DeepSeek-V3's
    multi-token-prediction layer (``mtp.load_mtp`` reads it back; ``transformers`` ignores it). Each file is
    written to a temporary name and renamed, so a crash never leaves a half-written checkpoint behind. Saving
    over a sharded checkpoint removes its index and shards, which loaders would otherwise prefer.
    """
    from safetensors.torch import save_file

    cfg: ModelConfig = model.cfg
    family = get_family(cfg.family)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    state = cast_state(state, dtype, fp32_names(model))
    skip = {"lm_head.weight", "cls.predictions.decoder.weight"} if cfg.tie_embeddings else set()
    tensors = convert_to_hf(state, family.save_map, cfg, skip=skip)
    if family.finish_export is not None:
        tensors = family.finish_export(tensors, cfg)
    prefixed = {_with_prefix(name, family.save_prefix): t for name, t in tensors.items()}
    hf_config = family.to_hf_config(cfg)
    for extra in extras:
        extra.check_belongs_to(model)
        prefixed.update({k: v.to("cpu") for k, v in extra.hf_tensors(dtype).items()})
        hf_config.update(extra.hf_config_updates())
    stored = next(iter(prefixed.values())).dtype
    hf_config["dtype"] = hf_config["torch_dtype"] = str(stored).removeprefix("torch.")
    if not getattr(model, "has_mlm_head", True):  # an encoder saved without its masked-LM head
        hf_config["architectures"] = ["BertModel"]

    out = Path(directory)
    stale_shards = _old_shards(out)
    with atomic_path(out / SINGLE_FILE) as tmp:
        save_file(prefixed, str(tmp), metadata={"format": "pt"})
    # the loader prefers an index over model.safetensors, so it goes as soon as the new weights are in place; the
    # shards it listed go last: a crash in between leaves extra files, never a folder that loads the old weights
    (out / INDEX_FILE).unlink(missing_ok=True)
    with atomic_path(out / "config.json") as tmp:
        tmp.write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for shard in stale_shards:
        shard.unlink(missing_ok=True)
    return out


_SHARD_NAME = re.compile(r"model-\d+-of-\d+\.safetensors")  # how Hugging Face names the shards of a large checkpoint


def _old_shards(folder: Path) -> list[Path]:
    """Shard files of an earlier, sharded checkpoint in ``folder``: those its index lists, and any named like one.

    Only plain ``*.safetensors`` names inside ``folder`` count (an index cannot send the deletion elsewhere), and
    never the single file :func:`save_hf_checkpoint` writes.
    """
    names = {p.name for p in folder.glob("model-*-of-*.safetensors") if _SHARD_NAME.fullmatch(p.name)}
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            names |= set(read_index(index).values())
        except ValueError:
            pass  # a damaged index is removed all the same; its shards are still found by their names
    return [folder / n for n in sorted(names)
            if Path(n).name == n and n.endswith(".safetensors") and n != SINGLE_FILE and (folder / n).is_file()]


def _with_prefix(name: str, prefix: str) -> str:
    return name if name.startswith(HEAD_PREFIXES) else prefix + name
