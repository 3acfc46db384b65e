"""What the loader needs to know about a family: its weight map and how to read/write ``config.json``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import ModelConfig
from .weights import WeightMap


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]  # Hugging Face ``model_type`` values this family reads
    weight_map: WeightMap
    from_hf_config: Callable[[dict[str, Any]], ModelConfig]
    to_hf_config: Callable[[ModelConfig], dict[str, Any]]
    strip_prefixes: tuple[str, ...] = ()  # optional leading parts of checkpoint names (e.g. "transformer.")
    save_prefix: str = ""  # what ``save_pretrained`` writes in front of the mapped names (heads excepted)
    export_map: WeightMap | None = None  # when export must write only one of several accepted spellings
    # optional hook run on the checkpoint before mapping: (names, get_tensor, config) -> (names, get_tensor);
    # it may check consistency (expert counts) or rewrite tensors (DeepSeek's FP8 block dequantization)
    prepare_checkpoint: Callable[..., tuple[list[str], Callable[[str], Any]]] | None = None

    @property
    def save_map(self) -> WeightMap:
        return self.export_map or self.weight_map


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    from .config import _load_families

    _load_families()
    return _FAMILIES[name]


def family_for_model_type(model_type: str) -> Family:
    from .config import _load_families

    _load_families()
    for family in _FAMILIES.values():
        if model_type in family.model_types:
            return family
    known = sorted(t for f in _FAMILIES.values() for t in f.model_types)
    raise ValueError(f"config.json has model_type {model_type!r}, which this package does not support; "
                     f"supported: {', '.join(known)}")
