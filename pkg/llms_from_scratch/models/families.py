"""The zoo's model families, in one list, and the lookups built on it.

A family is one file in this folder (``gpt2.py``, ``llama.py`` ...) ending in ``FAMILY = Family(...)``: its
named configs, weight map and ``config.json`` readers. Adding a family is that file plus its line in
:data:`FAMILIES` below (see ``pkg/ADDING_A_MODEL_FAMILY.md``); nothing registers itself on import.

>>> get_config("qwen3-0.6b").emb_dim
1024
"""

from __future__ import annotations

import difflib
from typing import Any

from . import (
    bert,
    deepseek,
    gemma3,
    gpt2,
    gpt_oss,
    llama,
    mistral,
    olmo3,
    qwen1,
    qwen3,
    qwen3_5,
    qwen3_moe,
    qwen3_next,
    smollm3,
)
from .config import ModelConfig
from .family import Family

FAMILIES: tuple[Family, ...] = (
    gpt2.FAMILY,
    llama.FAMILY,  # Llama 2/3 and SmolLM2
    qwen3.FAMILY,
    bert.FAMILY,
    mistral.FAMILY,
    qwen1.FAMILY,
    qwen3_moe.FAMILY,
    deepseek.FAMILY,
    gemma3.FAMILY,
    olmo3.FAMILY,
    smollm3.FAMILY,
    qwen3_next.FAMILY,
    gpt_oss.FAMILY,
    qwen3_5.FAMILY,  # Qwen3.5: Qwen3-Next's hybrid layers, dense or MoE
)


def _index_families() -> tuple[dict[str, Family], dict[str, ModelConfig]]:
    by_name: dict[str, Family] = {}
    configs: dict[str, ModelConfig] = {}
    for family in FAMILIES:
        if family.name in by_name:
            raise ValueError(f"two families are named {family.name!r}")
        by_name[family.name] = family
        for name, cfg in family.configs.items():
            if name in configs:
                raise ValueError(f"model name {name!r} is listed by two families")
            configs[name] = cfg
    return by_name, configs


_BY_NAME, MODEL_CONFIGS = _index_families()


def get_family(name: str) -> Family:
    """The family called ``name`` (the ``family`` field of a :class:`ModelConfig`)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; known families: {', '.join(_BY_NAME)}. A new family "
                         "needs its own file in models/ and a line in models/families.py") from None


def family_for_model_type(model_type: str) -> Family:
    """The family that reads a Hugging Face ``config.json`` with this ``model_type``."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    known = sorted(t for f in FAMILIES for t in f.model_types)
    raise ValueError(f"config.json has model_type {model_type!r}, which this package does not support; "
                     f"supported: {', '.join(known)}")


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The config named ``name``, optionally with fields replaced (e.g. to shrink it for a test)."""
    try:
        config = MODEL_CONFIGS[name]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), list(MODEL_CONFIGS), n=4, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(
            f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(MODEL_CONFIGS))}."
        ) from None
    return config.replace(**overrides) if overrides else config


def list_models() -> list[str]:
    """All model names, sorted."""
    return sorted(MODEL_CONFIGS)
