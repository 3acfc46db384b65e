"""Mistral 7B (Mistral AI, 2023): Llama's architecture with sliding-window attention.

v0.1 lets each token attend to the last ``sliding_window = 4096`` tokens (itself included) in every layer;
information from further back still flows through the layers, one window per layer. The KV cache then only
needs the last 4096 tokens per layer, which :class:`~llms_from_scratch.nn.RingKVCache` keeps. The
v0.2/v0.3 instruct models dropped the window (full attention) and raised the RoPE base to 1e6; v0.3 also
grew the vocabulary to 32768. Weight names are Llama's.
"""

from __future__ import annotations

from typing import Any

from .config import ModelConfig
from .family import Family
from .hf_config import llama_like_to_hf, rope_from_hf, token_ids_from_hf
from .llama import WEIGHT_MAP as LLAMA_WEIGHT_MAP

_TOKENS = (("bos_token_id", 1), ("eos_token_id", 2))


def mistral_config(**kw: Any) -> ModelConfig:
    # layer_types stays None: with a sliding_window set, every layer then slides (ModelConfig.layer_window)
    defaults = dict(
        family="mistral", vocab_size=32000, context_length=32768, emb_dim=4096, n_layers=32, n_heads=32,
        n_kv_groups=8, head_dim=128, hidden_dim=14336, norm="rmsnorm", norm_eps=1e-5, ffn="swiglu",
        extra=_TOKENS,
    )
    return ModelConfig(**{**defaults, **kw})


MISTRAL_7B_V0_1 = mistral_config(rope_base=10_000.0, sliding_window=4096)
MISTRAL_7B_INSTRUCT_V0_2 = mistral_config(rope_base=1_000_000.0)
MISTRAL_7B_INSTRUCT_V0_3 = mistral_config(
    rope_base=1_000_000.0, vocab_size=32768)
CONFIGS = {
    "mistral-7b-v0.1": MISTRAL_7B_V0_1,
    "mistral-7b-instruct-v0.1": MISTRAL_7B_V0_1,
    "mistral-7b-instruct-v0.2": MISTRAL_7B_INSTRUCT_V0_2,
    "mistral-7b-v0.3": MISTRAL_7B_INSTRUCT_V0_3,
    "mistral-7b-instruct-v0.3": MISTRAL_7B_INSTRUCT_V0_3,
}


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    base, scaling = rope_from_hf(c)
    heads = c["num_attention_heads"]
    n_layers = c["num_hidden_layers"]
    window = c.get("sliding_window")
    return mistral_config(
        vocab_size=c["vocab_size"], context_length=c["max_position_embeddings"], emb_dim=c["hidden_size"],
        n_layers=n_layers, n_heads=heads, n_kv_groups=c.get("num_key_value_heads") or heads,
        head_dim=c.get("head_dim") or c["hidden_size"] // heads, hidden_dim=c["intermediate_size"],
        norm_eps=c.get("rms_norm_eps", 1e-5), rope_base=base, rope_scaling=scaling, sliding_window=window,
        tie_embeddings=bool(c.get("tie_word_embeddings", False)), extra=token_ids_from_hf(c),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    if cfg.layer_types is not None and set(cfg.layer_types) != {"sliding"}:
        raise ValueError("Mistral checkpoints slide the window in every layer or in none; "
                         f"this config mixes {sorted(set(cfg.layer_types))}")
    out = llama_like_to_hf(cfg, "mistral", "MistralForCausalLM")
    out["sliding_window"] = cfg.sliding_window
    return out


FAMILY = Family(
    name="mistral", model_types=("mistral",), weight_map=LLAMA_WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, configs=CONFIGS,
)
