"""Reading and writing the fields of Hugging Face ``config.json`` files that several families share."""

from __future__ import annotations

import math
from typing import Any

from ..nn.rope import RopeScaling
from .config import ModelConfig


def rope_from_hf(c: dict[str, Any]) -> tuple[float, RopeScaling | None]:
    """RoPE base and scaling from either layout: ``rope_theta`` + ``rope_scaling`` (hub files, transformers 4)
    or ``rope_parameters`` (transformers 5)."""
    params = dict(c.get("rope_parameters") or {})
    scaling = dict(c.get("rope_scaling") or {})
    base = params.get("rope_theta", c.get("rope_theta", 10_000.0))
    spec = {**scaling, **params}
    rope_type = spec.get("rope_type", spec.get("type", "default"))
    if rope_type in (None, "default"):
        return float(base), None
    if rope_type not in ("llama3", "yarn"):
        raise ValueError(f"rope scaling {rope_type!r} is not supported (supported: llama3, yarn)")
    original = spec.get("original_max_position_embeddings") or c.get("original_max_position_embeddings")
    factor = spec.get("factor")
    if factor is None:
        factor = c["max_position_embeddings"] / original
    attention_factor = spec.get("attention_factor")
    if attention_factor is None and rope_type == "yarn" and spec.get("mscale") and spec.get("mscale_all_dim"):
        # DeepSeek's YaRN: cos/sin are scaled by the ratio of two mscales (1.0 for DeepSeek-V3), as in transformers
        def mscale(m: float) -> float:
            return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0

        attention_factor = mscale(spec["mscale"]) / mscale(spec["mscale_all_dim"])
    scaling_obj = RopeScaling(
        rope_type=rope_type, factor=float(factor), original_context_length=int(original),
        low_freq_factor=float(spec.get("low_freq_factor", 1.0)), high_freq_factor=float(spec.get("high_freq_factor", 4.0)),
        beta_fast=float(spec.get("beta_fast") or 32.0), beta_slow=float(spec.get("beta_slow") or 1.0),
        attention_factor=attention_factor,
    )
    return float(base), scaling_obj


def rope_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    params: dict[str, Any] = {"rope_theta": cfg.rope_base, "rope_type": "default"}
    s = cfg.rope_scaling
    if s is not None:
        params.update(rope_type=s.rope_type, factor=s.factor, original_max_position_embeddings=s.original_context_length)
        if s.rope_type == "llama3":
            params.update(low_freq_factor=s.low_freq_factor, high_freq_factor=s.high_freq_factor)
        else:
            params.update(beta_fast=s.beta_fast, beta_slow=s.beta_slow)
            if s.attention_factor is not None:
                params["attention_factor"] = s.attention_factor
    # both spellings, so transformers 4.x and 5.x read the same values
    legacy = {k: v for k, v in params.items() if k != "rope_theta"} if s is not None else None
    return {"rope_theta": cfg.rope_base, "rope_scaling": legacy, "rope_parameters": params}


def token_ids_from_hf(c: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple((k, c.get(k)) for k in ("bos_token_id", "eos_token_id", "pad_token_id") if c.get(k) is not None)


def llama_like_to_hf(cfg: ModelConfig, model_type: str, architecture: str) -> dict[str, Any]:
    out = {
        "architectures": [architecture], "model_type": model_type, "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.context_length, "hidden_size": cfg.emb_dim,
        "intermediate_size": cfg.hidden_dim, "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.resolved_kv_groups,
        "head_dim": cfg.resolved_head_dim, "hidden_act": "silu", "rms_norm_eps": cfg.norm_eps,
        "attention_bias": cfg.qkv_bias, "attention_dropout": cfg.drop_rate,
        "tie_word_embeddings": cfg.tie_embeddings, **rope_to_hf(cfg),
    }
    out.update(dict(cfg.extra))
    return out
