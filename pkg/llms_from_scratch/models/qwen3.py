"""Qwen3 dense models (Alibaba, 2025).

Llama's layout (RMSNorm, SwiGLU, RoPE, grouped-query attention with 8 key/value heads, no biases) plus
QK-norm: an RMSNorm over each query and key head, applied before RoPE. ``head_dim`` is fixed at 128, so for
several sizes ``n_heads * head_dim != emb_dim``. The small sizes tie the output head to the embedding.
"""

from __future__ import annotations

from typing import Any

from .config import ModelConfig
from .family import Family
from .hf_config import llama_like_to_hf, rope_from_hf, token_ids_from_hf
from .llama import WEIGHT_MAP as LLAMA_WEIGHT_MAP
from .weights import WeightMap

_TOKENS = (("bos_token_id", 151643), ("eos_token_id", 151645))


def qwen3_config(emb_dim: int, n_layers: int, n_heads: int, hidden_dim: int, tie: bool) -> ModelConfig:
    return ModelConfig(
        family="qwen3", vocab_size=151936, context_length=40960, emb_dim=emb_dim, n_layers=n_layers,
        n_heads=n_heads, n_kv_groups=8, head_dim=128, hidden_dim=hidden_dim, norm="rmsnorm", norm_eps=1e-6,
        ffn="swiglu", rope_base=1_000_000.0, qk_norm=True, tie_embeddings=tie, extra=_TOKENS,
    )


QWEN3_0_6B = qwen3_config(1024, 28, 16, 3072, tie=True)
QWEN3_1_7B = qwen3_config(2048, 28, 16, 6144, tie=True)
QWEN3_4B = qwen3_config(2560, 36, 32, 9728, tie=True)
QWEN3_8B = qwen3_config(4096, 36, 32, 12288, tie=False)
QWEN3_14B = qwen3_config(5120, 40, 40, 17408, tie=False)
QWEN3_32B = qwen3_config(5120, 64, 64, 25600, tie=False)
_SIZES = {"qwen3-0.6b": QWEN3_0_6B, "qwen3-1.7b": QWEN3_1_7B, "qwen3-4b": QWEN3_4B, "qwen3-8b": QWEN3_8B,
          "qwen3-14b": QWEN3_14B, "qwen3-32b": QWEN3_32B}
_BASE_TOKENS = (("bos_token_id", 151643), ("eos_token_id", 151643))
CONFIGS = {
    **_SIZES,
    # the -Base checkpoints (all but 32B): same architecture, 32k context, end-of-text as eos
    **{f"{name}-base": cfg.replace(context_length=32768, extra=_BASE_TOKENS)
       for name, cfg in _SIZES.items() if name != "qwen3-32b"},
}

_B = "trf_blocks.{}"
WEIGHT_MAP = WeightMap({
    **LLAMA_WEIGHT_MAP.entries,
    "model.layers.{}.self_attn.q_norm.weight": f"{_B}.att.q_norm.scale",
    "model.layers.{}.self_attn.k_norm.weight": f"{_B}.att.k_norm.scale",
}, ignore=(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq",))


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    base, scaling = rope_from_hf(c)
    heads = c["num_attention_heads"]
    window = c.get("sliding_window") if c.get("use_sliding_window") else None
    layer_types = None
    if window is not None:
        # Qwen3 slides the window in the layers from max_window_layers on
        first = c.get("max_window_layers", c["num_hidden_layers"])
        layer_types = tuple("sliding" if i >= first else "full" for i in range(c["num_hidden_layers"]))
    return ModelConfig(
        family="qwen3", vocab_size=c["vocab_size"], context_length=c["max_position_embeddings"],
        emb_dim=c["hidden_size"], n_layers=c["num_hidden_layers"], n_heads=heads,
        n_kv_groups=c.get("num_key_value_heads") or heads, head_dim=c.get("head_dim") or 128,
        hidden_dim=c["intermediate_size"], norm="rmsnorm", norm_eps=c.get("rms_norm_eps", 1e-6), ffn="swiglu",
        rope_base=base, rope_scaling=scaling, qk_norm=True, qkv_bias=bool(c.get("attention_bias", False)),
        out_bias=bool(c.get("attention_bias", False)), sliding_window=window, layer_types=layer_types,
        tie_embeddings=bool(c.get("tie_word_embeddings", False)), extra=token_ids_from_hf(c),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    out = llama_like_to_hf(cfg, "qwen3", "Qwen3ForCausalLM")
    if cfg.sliding_window is not None:
        sliding = [i for i, t in enumerate(cfg.layer_types or ("sliding",) * cfg.n_layers) if t == "sliding"]
        out.update(use_sliding_window=True, sliding_window=cfg.sliding_window, max_window_layers=min(sliding))
    else:
        out.update(use_sliding_window=False, sliding_window=None)
    return out


FAMILY = Family(
    name="qwen3", model_types=("qwen3",), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, configs=CONFIGS,
)
