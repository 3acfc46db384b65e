"""SmolLM3 3B (Hugging Face, 2025): Llama's architecture with NoPE layers.

Every fourth layer applies no rotary position embedding at all ("NoPE"): its queries and keys carry no
position, so it attends by content alone, and the causal mask is its only sense of order. The other layers
use RoPE with a base of 5M. The rest is Llama 3.2's layout: grouped-query attention (16 query heads share 4
key/value heads), SwiGLU, RMSNorm before each block, no biases, the output head tied to the embedding, and
Llama 3's 128k-token vocabulary. Weight names are Llama's: NoPE layers have nothing extra to store.
"""

from __future__ import annotations

from typing import Any

from .config import ModelConfig
from .family import Family
from .hf_config import llama_like_to_hf, rope_from_hf, token_ids_from_hf
from .llama import WEIGHT_MAP as LLAMA_WEIGHT_MAP

_NOPE_INTERVAL = 4
# the released SmolLM3-3B is the post-trained (instruct, hybrid reasoning) model: <|im_end|> ends its replies
_TOKENS = (("bos_token_id", 128000), ("eos_token_id", 128012), ("pad_token_id", 128004))
_BASE_TOKENS = (("bos_token_id", 128000), ("eos_token_id", 128001), ("pad_token_id", 128004))


def nope_every(interval: int, n_layers: int) -> tuple[int, ...]:
    """Layers without RoPE: every ``interval``-th one (layers 3, 7, 11, ... for an interval of 4)."""
    return tuple(i for i in range(n_layers) if (i + 1) % interval == 0)


def smollm3_config(**kw: Any) -> ModelConfig:
    defaults = dict(
        family="smollm3", vocab_size=128_256, context_length=65_536, emb_dim=2048, n_layers=36, n_heads=16,
        n_kv_groups=4, hidden_dim=11_008, norm="rmsnorm", norm_eps=1e-6, ffn="swiglu", rope_base=5_000_000.0,
        tie_embeddings=True, extra=_TOKENS,
    )
    merged = {**defaults, **kw}
    merged.setdefault("nope_layers", nope_every(_NOPE_INTERVAL, merged["n_layers"]))
    return ModelConfig(**merged)


SMOLLM3_3B = smollm3_config()
CONFIGS = {
    "smollm3-3b": SMOLLM3_3B,
    "smollm3-3b-base": SMOLLM3_3B.replace(extra=_BASE_TOKENS),
}


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    if c.get("mlp_bias") or c.get("attention_bias"):
        raise ValueError("SmolLM3 checkpoints with attention_bias or mlp_bias set are not supported")
    base, scaling = rope_from_hf(c)
    heads, n_layers = c["num_attention_heads"], c["num_hidden_layers"]
    if c.get("no_rope_layers") is not None:  # 1 = this layer uses RoPE, 0 = NoPE
        nope = tuple(i for i, uses_rope in enumerate(c["no_rope_layers"]) if not uses_rope)
    else:
        nope = nope_every(c.get("no_rope_layer_interval", _NOPE_INTERVAL), n_layers)
    window, layer_types = None, None
    if c.get("use_sliding_window") and c.get("sliding_window") is not None:
        window = c["sliding_window"]
        types = c.get("layer_types") or ["sliding_attention" if i in nope else "full_attention"
                                         for i in range(n_layers)]
        layer_types = tuple("sliding" if t == "sliding_attention" else "full" for t in types)
    return smollm3_config(
        vocab_size=c["vocab_size"], context_length=c["max_position_embeddings"], emb_dim=c["hidden_size"],
        n_layers=n_layers, n_heads=heads, n_kv_groups=c.get("num_key_value_heads") or heads,
        head_dim=c.get("head_dim") or c["hidden_size"] // heads, hidden_dim=c["intermediate_size"],
        norm_eps=c.get("rms_norm_eps", 1e-6), rope_base=base, rope_scaling=scaling, nope_layers=nope,
        sliding_window=window, layer_types=layer_types, tie_embeddings=bool(c.get("tie_word_embeddings", True)),
        extra=token_ids_from_hf(c),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    out = llama_like_to_hf(cfg, "smollm3", "SmolLM3ForCausalLM")
    if cfg.resolved_head_dim * cfg.n_heads != cfg.emb_dim:
        raise ValueError("SmolLM3 derives head_dim from hidden_size / num_attention_heads; "
                         f"this config has head_dim {cfg.resolved_head_dim} with {cfg.n_heads} heads of {cfg.emb_dim}")
    del out["head_dim"]
    types = cfg.layer_types or ("sliding" if cfg.sliding_window else "full",) * cfg.n_layers
    out.update(
        no_rope_layers=[0 if i in cfg.nope_layers else 1 for i in range(cfg.n_layers)],
        use_sliding_window=cfg.sliding_window is not None, sliding_window=cfg.sliding_window,
        layer_types=[f"{t}_attention" for t in types], mlp_bias=False,
    )
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        out.setdefault(key, None)  # not SmolLM3Config's defaults, which a config without these ids does not mean
    return out


FAMILY = Family(
    name="smollm3", model_types=("smollm3",), weight_map=LLAMA_WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, configs=CONFIGS,
)
