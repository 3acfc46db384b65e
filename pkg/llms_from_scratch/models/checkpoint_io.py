"""Checkpoint file I/O that every loader shares: safetensors files, atomic writes, what a model expects.

* finding and reading safetensors checkpoints (:func:`safetensors_files`, :func:`open_safetensors`,
  :func:`tensor_reader`) with the memory behaviour described at :func:`tensor_reader`;
* writing files atomically (:func:`atomic_path`, from :mod:`llms_from_scratch.files`);
* what a model expects from a checkpoint (:func:`expected_shapes`, :func:`tied_names`, :func:`fp32_names`) and
  putting converted tensors into it (:func:`load_state_dict_into`);
* dtype handling (:func:`cast_state`) and failing early on a device that cannot be used (:func:`check_device_dtype`).

The Hugging Face loader (``loading.py``), the GGUF loader (``gguf_file.py``), Meta's layout (``meta_llama.py``)
and DeepSeek's multi-token-prediction layer (``mtp.py``) all build on these.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..files import atomic_path
from .config import ModelConfig
from .weights import Rename, WeightMap, WeightMismatchError

__all__ = [
    "INDEX_FILE",
    "SINGLE_FILE",
    "atomic_path",
    "cast_state",
    "check_device_dtype",
    "checkpoint_fp32_names",
    "expected_shapes",
    "fp32_names",
    "load_state_dict_into",
    "open_safetensors",
    "read_index",
    "safetensors_files",
    "tensor_reader",
    "tied_names",
]

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


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


def read_index(index: Path) -> dict[str, str]:
    """The ``weight_map`` (tensor name -> shard file name) of a sharded checkpoint's index file."""
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{index} is not valid JSON ({exc}); restore the checkpoint's original {INDEX_FILE}, "
                         "or download the checkpoint again") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ValueError(f"{index} has no 'weight_map' from tensor names to shard files; restore the checkpoint's "
                         f"original {INDEX_FILE}, or download the checkpoint again")
    return weight_map


def safetensors_files(directory: Path) -> list[Path]:
    """The checkpoint's safetensors files; a sharded index must list only shards that exist."""
    index = directory / INDEX_FILE
    if index.is_file():
        weight_map = read_index(index)
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


def open_safetensors(files: list[Path]) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it, for every file in ``files``."""
    from safetensors import SafetensorError, safe_open

    where = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt", device="cpu") as handle:
                where.update({name: file for name in handle.keys()})
        except SafetensorError as exc:
            raise ValueError(_unreadable(file, exc)) from None
    return where


def _unreadable(file: Path, exc: Exception) -> str:
    detail = (str(exc).splitlines() or [type(exc).__name__])[0]
    return (f"{file} is not a readable safetensors file ({detail}); it is probably truncated or damaged: "
            "download or save it again")


# uint8 tensors with these name endings are packed quantized weights (MXFP4 blocks and their e8m0 scales), passed
# on as they are: the family's prepare_checkpoint hook decodes them (models/mxfp4.py)
PACKED_SUFFIXES = ("_blocks", "_scales")


def tensor_reader(where: dict[str, Path], dtype: torch.dtype | None, keep_fp32: set[str] = frozenset()):
    """``get_tensor(name)`` for the tensors :func:`open_safetensors` found: cast to ``dtype`` (when given), the
    ``keep_fp32`` ones to float32. A tensor that is not floating point cannot be a weight and is refused, naming
    its file.

    Each call opens the file, takes the one tensor and closes the file again. ``safe_open`` maps the whole
    file and hands out views of that mapping; the pages a read touches stay resident while any view lives, so
    a file held open through loading (or a view kept as a parameter) would keep a second copy of the checkpoint
    in memory. Tensors come back as such views when no cast is needed: ``convert_to_ours`` copies each one
    into memory of its own exactly once (a transposed weight straight from the mapping, with no intermediate
    copy) and drops the view, which unmaps the file. Re-reading the header for every tensor is cheap next to that.
    """
    from safetensors import SafetensorError, safe_open

    def get_tensor(name: str) -> torch.Tensor:
        file = where[name]
        try:
            with safe_open(str(file), framework="pt", device="cpu") as handle:
                t = handle.get_tensor(name)
        except SafetensorError as exc:
            raise ValueError(_unreadable(file, exc)) from None
        if t.dtype == torch.uint8 and name.endswith(PACKED_SUFFIXES):
            return t  # packed quantized data for a family's prepare_checkpoint hook to decode (gpt-oss's MXFP4)
        if not t.is_floating_point():  # assigning it as a parameter would fail with torch's gradient message
            raise WeightMismatchError(
                f"{file}: tensor {name!r} is stored as {t.dtype}, but model weights are floating point; this is not "
                "a plain checkpoint of this model (a quantized export?): use its float32, float16 or bfloat16 files"
            )
        target = t.dtype
        if dtype is not None and t.is_floating_point():
            target = torch.float32 if name in keep_fp32 else dtype
        return t.to(target)  # a view of the mapping unless cast

    return get_tensor


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


def cast_state(state: dict[str, torch.Tensor], dtype: torch.dtype | None,
               keep_fp32: set[str] = frozenset()) -> dict[str, torch.Tensor]:
    """Floating tensors of ``state`` in ``dtype`` (None: unchanged), the ``keep_fp32`` names in float32."""
    if dtype is None:
        return state
    return {k: v.to(torch.float32 if k in keep_fp32 else dtype) if v.is_floating_point() else v
            for k, v in state.items()}


def tied_names(model: nn.Module) -> set[str]:
    """State names that share another tensor's storage (the tied output head), so no checkpoint provides them."""
    return {"out_head.weight"} if model.cfg.tie_embeddings and hasattr(model, "out_head") else set()


def expected_shapes(model: nn.Module) -> dict[str, torch.Size]:
    """What a checkpoint must provide for ``model`` (a meta-device model works): state name -> shape."""
    tied = tied_names(model)
    return {n: p.shape for n, p in model.state_dict(keep_vars=True).items() if n not in tied}


def load_state_dict_into(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Assign converted tensors as the model's parameters (works on a meta-device model) and re-tie heads."""
    params = dict(model.named_parameters())
    integer = [f"{n} ({t.dtype})" for n, t in state.items() if n in params and not t.is_floating_point()]
    if integer:  # torch would say only that such tensors cannot require gradients
        raise WeightMismatchError(
            f"the checkpoint stores {', '.join(integer[:3])}{' ...' if len(integer) > 3 else ''} as integers, but "
            "model weights are floating point; use a float32, float16 or bfloat16 checkpoint of this model"
        )
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    still_meta = [n for n, p in model.named_parameters() if p.is_meta]
    if still_meta:  # convert_to_ours checks coverage, so this only guards against a bug in a weight map
        raise WeightMismatchError(f"parameters left without weights: {still_meta}")
    return model
