"""Build models from configs, load Hugging Face checkpoints into them, and export them back.

Loading keeps peak memory near one copy of the weights: the model is created on the ``meta`` device (shapes
only, no storage), each checkpoint tensor is read once into memory of its own (see :func:`tensor_reader`),
converted and then *assigned* as the parameter, so no second, randomly initialized copy ever exists.
``ch04/03_kv-cache/measure_memory.py`` measures it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ModelConfig
from .decoder import DecoderLM
from .encoder import EncoderMLM
from .family import family_for_model_type, get_family
from .weights import Rename, WeightMap, WeightMismatchError, convert_to_hf, convert_to_ours

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
HEAD_PREFIXES = ("lm_head.", "cls.")  # heads sit beside the base model's prefix, never inside it


def check_device_dtype(device: torch.device | str | None, dtype: torch.dtype | None) -> None:
    """Fail early, with the fix, when a device is missing or cannot hold ``dtype``."""
    if device is None:
        return
    kind = torch.device(device).type
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} was requested but no CUDA GPU is available; use device='cpu'")
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise RuntimeError(
                "this CUDA GPU does not support bfloat16; load with dtype=torch.float16 or torch.float32"
            )
    elif kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise RuntimeError(f"device {device!r} was requested but Apple's MPS backend is not available")
        if dtype == torch.float64:
            raise RuntimeError("MPS has no float64 support; load with dtype=torch.float32")


def build_model(
    cfg: ModelConfig, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None, **kwargs: Any
) -> nn.Module:
    """A randomly initialized model for ``cfg`` (``DecoderLM``, or ``EncoderMLM`` for BERT)."""
    check_device_dtype(device, dtype)
    model = EncoderMLM(cfg, **kwargs) if cfg.family == "bert" else DecoderLM(cfg)
    if dtype is not None or device is not None:
        model = model.to(device=device, dtype=dtype)
    return model


def read_hf_config(path: str | os.PathLike) -> ModelConfig:
    """The :class:`ModelConfig` described by a Hugging Face ``config.json`` (a file or the folder holding it)."""
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no config.json at {file}; a Hugging Face checkpoint folder holds one")
    raw = json.loads(file.read_text(encoding="utf-8"))
    if "model_type" not in raw:
        raise ValueError(f"{file} has no 'model_type', so its family is unknown")
    return family_for_model_type(raw["model_type"]).from_hf_config(raw)


def _safetensors_files(directory: Path) -> list[Path]:
    """The checkpoint's safetensors files; a sharded index must list only shards that exist."""
    index = directory / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (directory / s).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{index.name} in {directory} lists {len(shards)} shards but {len(missing)} are missing: "
                f"{', '.join(missing)}. Download the missing shard files into that folder."
            )
        return [directory / s for s in shards]
    if (directory / SINGLE_FILE).is_file():
        return [directory / SINGLE_FILE]
    found = sorted(directory.glob("*.safetensors"))
    if found:
        return found
    raise FileNotFoundError(f"no {SINGLE_FILE}, {INDEX_FILE} or *.safetensors file in {directory}")


def load_state_dict_into(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Assign converted tensors as the model's parameters (works on a meta-device model) and re-tie heads."""
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    still_meta = [n for n, p in model.named_parameters() if p.is_meta]
    if still_meta:  # convert_to_ours checks coverage, so this only guards against a bug in a weight map
        raise WeightMismatchError(f"parameters left without weights: {still_meta}")
    return model


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
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint folder {directory} does not exist")
    cfg = config or read_hf_config(directory)
    files = _safetensors_files(directory)
    family = get_family(cfg.family)
    handles = open_safetensors(files)
    is_mlm = cfg.family != "bert" or any(n.startswith("cls.") for n in handles)
    with torch.device("meta"):
        model = build_model(cfg, mlm_head=is_mlm) if cfg.family == "bert" else build_model(cfg)

    keep = checkpoint_fp32_names(model, family.weight_map, cfg, family.strip_prefixes)
    get_tensor = tensor_reader(handles, dtype, keep)
    names = list(handles)
    if family.prepare_checkpoint is not None:
        names, get_tensor = family.prepare_checkpoint(names, get_tensor, cfg)
    state = convert_to_ours(
        names, get_tensor, family.weight_map, cfg, _expected_shapes(model),
        strip_prefixes=family.strip_prefixes, shared=_tied_names(model),
    )
    model = load_state_dict_into(model, state)
    return model.to(device).eval()


def fp32_names(model: nn.Module) -> set[str]:
    """State names that stay float32 whatever dtype the model is loaded or saved in (``FP32_BUFFERS``)."""
    return {f"{prefix}.{b}" if prefix else b for prefix, m in model.named_modules()
            for b in getattr(m, "FP32_BUFFERS", ()) if getattr(m, b, None) is not None}


def checkpoint_fp32_names(model: nn.Module, wmap: WeightMap, cfg: ModelConfig,
                          prefixes: tuple[str, ...] = ()) -> set[str]:
    """The checkpoint names of :func:`fp32_names` under ``wmap`` (plus their ``prefixes`` spellings)."""
    keep = fp32_names(model)
    names = {hf for hf, e in wmap.expand_for(cfg).items() if isinstance(e, Rename) and e.ours in keep}
    return names | {p + n for p in prefixes for n in names}


def open_safetensors(files: list[Path]) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it, for every file in ``files``."""
    from safetensors import safe_open

    where = {}
    for file in files:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            where.update({name: file for name in handle.keys()})
    return where


def tensor_reader(where: dict[str, Path], dtype: torch.dtype | None, keep_fp32: set[str] = frozenset()):
    """``get_tensor(name)`` for the tensors :func:`open_safetensors` found: floating tensors cast to ``dtype``
    (when given), the ``keep_fp32`` ones to float32.

    Each call opens the file, takes the one tensor and closes the file again. ``safe_open`` maps the whole
    file and hands out views of that mapping; the pages a read touches stay resident while any view lives, so
    a file held open through loading (or a view kept as a parameter) would keep a second copy of the checkpoint
    in memory. Tensors come back as such views when no cast is needed: :func:`convert_to_ours` copies each one
    into memory of its own exactly once (a transposed weight straight from the mapping, with no intermediate
    copy) and drops the view, which unmaps the file. Re-reading the header for every tensor is cheap next to that.
    """
    from safetensors import safe_open

    def get_tensor(name: str) -> torch.Tensor:
        with safe_open(str(where[name]), framework="pt", device="cpu") as handle:
            t = handle.get_tensor(name)
        target = t.dtype
        if dtype is not None and t.is_floating_point():
            target = torch.float32 if name in keep_fp32 else dtype
        return t.to(target)  # a view of the mapping unless cast

    return get_tensor


def cast_state(state: dict[str, torch.Tensor], dtype: torch.dtype | None,
               keep_fp32: set[str] = frozenset()) -> dict[str, torch.Tensor]:
    """Floating tensors of ``state`` in ``dtype`` (None: unchanged), the ``keep_fp32`` names in float32."""
    if dtype is None:
        return state
    return {k: v.to(torch.float32 if k in keep_fp32 else dtype) if v.is_floating_point() else v
            for k, v in state.items()}


def _tied_names(model: nn.Module) -> set[str]:
    return {"out_head.weight"} if model.cfg.tie_embeddings and hasattr(model, "out_head") else set()


def _expected_shapes(model: nn.Module) -> dict[str, torch.Size]:
    tied = _tied_names(model)
    return {n: p.shape for n, p in model.state_dict(keep_vars=True).items() if n not in tied}


def save_hf_checkpoint(model: nn.Module, directory: str | os.PathLike, *, dtype: torch.dtype | None = None,
                       mtp: nn.Module | None = None) -> Path:
    """Write ``model`` as a Hugging Face checkpoint folder (``config.json`` + ``model.safetensors``).

    ``transformers`` loads the folder with ``AutoModelForCausalLM`` / ``AutoModelForMaskedLM`` and computes
    the same logits. ``dtype`` converts floating tensors (buffers that stay float32, such as DeepSeek's
    correction bias, excepted). ``mtp``: DeepSeek-V3's multi-token-prediction module, written as layer
    ``n_layers`` in the official key layout (``load_mtp`` reads it back; ``transformers`` ignores it). Each
    file is written to a temporary name and renamed, so a crash never leaves a half-written checkpoint behind.
    """
    from safetensors.torch import save_file

    cfg: ModelConfig = model.cfg
    family = get_family(cfg.family)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    state = cast_state(state, dtype, fp32_names(model))
    skip = {"lm_head.weight", "cls.predictions.decoder.weight"} if cfg.tie_embeddings else set()
    tensors = convert_to_hf(state, family.save_map, cfg, skip=skip)
    prefixed = {_with_prefix(name, family.save_prefix): t for name, t in tensors.items()}
    hf_config = family.to_hf_config(cfg)
    if mtp is not None:
        from .mtp import mtp_hf_tensors

        if cfg.family != "deepseek" or mtp.cfg != cfg:
            raise ValueError("mtp must be the multi-token-prediction module built for this DeepSeek model's config")
        prefixed.update({k: v.to("cpu") for k, v in mtp_hf_tensors(mtp, dtype=dtype).items()})
        hf_config["num_nextn_predict_layers"] = 1
    stored = next(iter(prefixed.values())).dtype
    hf_config["dtype"] = hf_config["torch_dtype"] = str(stored).removeprefix("torch.")
    if cfg.family == "bert" and not getattr(model, "has_mlm_head", True):
        hf_config["architectures"] = ["BertModel"]

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with _atomic_path(out / SINGLE_FILE) as tmp:
        save_file(prefixed, str(tmp), metadata={"format": "pt"})
    with _atomic_path(out / "config.json") as tmp:
        tmp.write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def _with_prefix(name: str, prefix: str) -> str:
    return name if name.startswith(HEAD_PREFIXES) else prefix + name


class _atomic_path:
    """Context manager yielding a temporary path beside ``target`` that replaces it on success."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)


