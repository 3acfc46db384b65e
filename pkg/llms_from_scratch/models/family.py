"""What the zoo knows about one model family: its named configs, its weight map and its ``config.json`` readers.

Each family file (``gpt2.py``, ``llama.py`` ...) builds one :class:`Family` named ``FAMILY``;
:mod:`.families` lists them all. Nothing is registered by importing a family file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .config import ModelConfig
from .decoder import DecoderLM
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
    # its inverse for export, run on the mapped tensors before they are written: (tensors, config) -> tensors
    # (Qwen3-Next fuses the projections that prepare_checkpoint split apart back into the checkpoint's layout)
    finish_export: Callable[..., dict[str, Any]] | None = None
    # the official sizes under exact lower-case names, e.g. {"qwen3-0.6b": ModelConfig(...)}
    configs: Mapping[str, ModelConfig] = field(default_factory=dict)
    model_class: Callable[..., nn.Module] = DecoderLM  # what build_model makes from a config (BERT: EncoderMLM)

    def __post_init__(self) -> None:
        for name, cfg in self.configs.items():
            if name != name.lower():
                raise ValueError(f"model names are lower case; family {self.name!r} lists {name!r}")
            if cfg.family != self.name:
                raise ValueError(f"{name!r} is listed by family {self.name!r} but its config says {cfg.family!r}")

    @property
    def save_map(self) -> WeightMap:
        return self.export_map or self.weight_map
