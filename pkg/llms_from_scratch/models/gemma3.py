"""Gemma 3 text models (Google DeepMind, 2025): 1B, 4B, 12B and 27B.

A Llama-like decoder with six departures, each a config switch on the shared blocks:

* **sandwich norms**: every attention and feed-forward block is normalized before *and* after
  (``x + post_norm(f(pre_norm(x)))``), so no sub-layer can write an outsized update into the residual stream;
* **(1 + w) RMSNorm**: the checkpoints store each norm weight as an offset from 1;
* **GeGLU** feed-forward: SwiGLU's gate with a tanh-approximated GELU;
* **scaled embeddings**: the token embedding, tied to the output head, is multiplied by ``sqrt(emb_dim)``;
* **5:1 local/global attention**: five sliding-window layers (512 tokens for 1B, 1024 for the others) per
  full-attention layer, each kind with its own RoPE: base 10k locally, 1M globally, and on 4B-27B the global
  positions are linearly interpolated by 8 (32k pre-training context stretched to 128k);
* **QK-norm** per head, and a softmax scale of ``query_pre_attn_scalar ** -0.5`` (27B: 168, not its head_dim 128).

The 1B checkpoints are text-only (``model_type`` "gemma3_text"); 4B-27B are published as image-text models
("gemma3"), whose language model is read here and whose vision tower is skipped.
"""

from __future__ import annotations

from typing import Any

from ..nn.rope import RopeScaling
from .config import ModelConfig
from .family import Family
from .hf_config import token_ids_from_hf
from .weights import WeightMap

_PT_TOKENS = (("bos_token_id", 2), ("eos_token_id", 1), ("pad_token_id", 0))
_IT_TOKENS = (("bos_token_id", 2), ("eos_token_id", (1, 106)), ("pad_token_id", 0))  # 106: <end_of_turn>
_PATTERN = 6  # every sixth layer attends globally


def gemma3_layer_types(n_layers: int, pattern: int = _PATTERN) -> tuple[str, ...]:
    """Five sliding-window layers, then one full-attention layer, repeated."""
    return tuple("full" if (i + 1) % pattern == 0 else "sliding" for i in range(n_layers))


def gemma3_config(**kw: Any) -> ModelConfig:
    defaults = dict(
        family="gemma3", vocab_size=262_208, context_length=131_072, n_kv_groups=None, head_dim=256,
        norm="rmsnorm", norm_eps=1e-6, norm_unit_offset=True, norm_placement="sandwich", ffn="geglu",
        scale_embeddings=True, rope_base=1_000_000.0, rope_scaling=RopeScaling("linear", factor=8.0),
        sliding_rope_base=10_000.0, sliding_window=1024, qk_norm=True, query_pre_attn_scalar=256.0,
        tie_embeddings=True, extra=_PT_TOKENS,
    )
    merged = {**defaults, **kw}
    merged.setdefault("layer_types", gemma3_layer_types(merged["n_layers"]))
    return ModelConfig(**merged)


GEMMA3_1B = gemma3_config(
    vocab_size=262_144, context_length=32_768, emb_dim=1152, n_layers=26, n_heads=4, n_kv_groups=1,
    hidden_dim=6912, sliding_window=512, rope_scaling=None,
)
GEMMA3_4B = gemma3_config(emb_dim=2560, n_layers=34, n_heads=8, n_kv_groups=4, hidden_dim=10_240)
GEMMA3_12B = gemma3_config(emb_dim=3840, n_layers=48, n_heads=16, n_kv_groups=8, hidden_dim=15_360)
GEMMA3_27B = gemma3_config(
    emb_dim=5376, n_layers=62, n_heads=32, n_kv_groups=16, head_dim=128, hidden_dim=21_504,
    query_pre_attn_scalar=168.0,  # emb_dim / n_heads, not head_dim
)
_SIZES = {"gemma3-1b": GEMMA3_1B, "gemma3-4b": GEMMA3_4B, "gemma3-12b": GEMMA3_12B, "gemma3-27b": GEMMA3_27B}
CONFIGS = {
    **_SIZES,  # the pre-trained ("-pt") checkpoints
    # the instruction-tuned checkpoints: same weights' shapes, and <end_of_turn> also ends a reply
    **{f"{name}-it": cfg.replace(extra=_IT_TOKENS) for name, cfg in _SIZES.items()},
}

_B = "trf_blocks.{}"
WEIGHT_MAP = WeightMap({
    "model.embed_tokens.weight": "tok_emb.weight",
    "model.layers.{}.input_layernorm.weight": f"{_B}.norm1.scale",
    "model.layers.{}.self_attn.q_proj.weight": f"{_B}.att.W_query.weight",
    "model.layers.{}.self_attn.k_proj.weight": f"{_B}.att.W_key.weight",
    "model.layers.{}.self_attn.v_proj.weight": f"{_B}.att.W_value.weight",
    "model.layers.{}.self_attn.o_proj.weight": f"{_B}.att.out_proj.weight",
    "model.layers.{}.self_attn.q_norm.weight": f"{_B}.att.q_norm.scale",
    "model.layers.{}.self_attn.k_norm.weight": f"{_B}.att.k_norm.scale",
    # Gemma's "post_attention_layernorm" normalizes the attention output (Llama's name for the pre-MLP norm)
    "model.layers.{}.post_attention_layernorm.weight": f"{_B}.post_att_norm.scale",
    "model.layers.{}.pre_feedforward_layernorm.weight": f"{_B}.norm2.scale",
    "model.layers.{}.mlp.gate_proj.weight": f"{_B}.ff.fc1.weight",
    "model.layers.{}.mlp.up_proj.weight": f"{_B}.ff.fc2.weight",
    "model.layers.{}.mlp.down_proj.weight": f"{_B}.ff.fc3.weight",
    "model.layers.{}.post_feedforward_layernorm.weight": f"{_B}.post_ff_norm.scale",
    "model.norm.weight": "final_norm.scale",
    "lm_head.weight": "out_head.weight",
}, ignore=(
    # the image-text checkpoints (4B-27B): the vision tower and its projection into the text model
    r"vision_tower\..*", r"multi_modal_projector\..*",
))
# the image-text checkpoints store the language model under "language_model."
_STRIP = ("language_model.",)

_LAYER_TYPES = {"sliding_attention": "sliding", "full_attention": "full"}


def _rope_from_hf(c: dict[str, Any]) -> tuple[float, RopeScaling | None, float]:
    """(global base, global scaling, local base) from either layout: ``rope_theta`` + ``rope_local_base_freq``
    + ``rope_scaling`` (hub files) or per-layer-type ``rope_parameters`` (transformers 5)."""
    params = c.get("rope_parameters") or {}
    full = dict(params.get("full_attention") or {})
    local = dict(params.get("sliding_attention") or {})
    full = {**(c.get("rope_scaling") or {}), **full}
    global_base = float(full.get("rope_theta", c.get("rope_theta", 1_000_000.0)))
    local_base = float(local.get("rope_theta", c.get("rope_local_base_freq", 10_000.0)))
    if local.get("rope_type", "default") != "default":
        raise ValueError(f"Gemma 3 local layers with {local['rope_type']!r} RoPE scaling are not supported")
    rope_type = full.get("rope_type", full.get("type", "default"))
    if rope_type == "default":
        return global_base, None, local_base
    if rope_type != "linear":
        raise ValueError(f"Gemma 3 global RoPE scaling {rope_type!r} is not supported (supported: linear)")
    return global_base, RopeScaling("linear", factor=float(full["factor"])), local_base


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    if c.get("model_type") == "gemma3":  # image-text checkpoint: the language model's settings
        outer = {k: c[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if c.get(k) is not None}
        c = {**outer, **c.get("text_config", {}), "tie_word_embeddings": c.get("tie_word_embeddings", True)}
    for key in ("final_logit_softcapping", "attn_logit_softcapping"):
        if c.get(key) is not None:
            raise ValueError(f"{key}={c[key]} is Gemma 2's soft-capping, which Gemma 3 checkpoints do not use")
    if c.get("use_bidirectional_attention"):
        raise ValueError("use_bidirectional_attention=true (an embedding model) is not a causal language model")
    if c.get("attention_bias"):
        raise ValueError("Gemma 3 checkpoints with attention_bias=true are not supported")
    base, scaling, local_base = _rope_from_hf(c)
    n_layers = c.get("num_hidden_layers", 26)
    if c.get("layer_types"):
        layer_types = tuple(_LAYER_TYPES[t] for t in c["layer_types"])
    else:
        layer_types = gemma3_layer_types(n_layers, c.get("sliding_window_pattern", _PATTERN))
    # the defaults are transformers' Gemma3TextConfig ones: the hub's image-text configs omit most fields
    heads = c.get("num_attention_heads", 8)
    return gemma3_config(
        vocab_size=c.get("vocab_size", 262_208), context_length=c.get("max_position_embeddings", 131_072),
        emb_dim=c.get("hidden_size", 2304), n_layers=n_layers, n_heads=heads,
        n_kv_groups=c.get("num_key_value_heads", 4), head_dim=c.get("head_dim", 256),
        hidden_dim=c.get("intermediate_size", 9216), norm_eps=c.get("rms_norm_eps", 1e-6), rope_base=base,
        rope_scaling=scaling, sliding_rope_base=local_base, sliding_window=c.get("sliding_window", 4096),
        layer_types=layer_types, query_pre_attn_scalar=float(c.get("query_pre_attn_scalar", 256)),
        tie_embeddings=bool(c.get("tie_word_embeddings", True)), extra=token_ids_from_hf(c),
    )


def _int_if_whole(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x  # transformers' config insists on an int where it can be one


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    if cfg.layer_types is None or cfg.sliding_rope_base is None:
        raise ValueError("a Gemma 3 config needs layer_types and sliding_rope_base (local and global layers)")
    full: dict[str, Any] = {"rope_type": "default", "rope_theta": cfg.rope_base}
    if cfg.rope_scaling is not None:
        if cfg.rope_scaling.rope_type != "linear":
            raise ValueError(f"Gemma 3 scales RoPE linearly; this config uses {cfg.rope_scaling.rope_type!r}")
        full.update(rope_type="linear", factor=cfg.rope_scaling.factor)
    out = {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.context_length, "hidden_size": cfg.emb_dim,
        "intermediate_size": cfg.hidden_dim, "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.resolved_kv_groups,
        "head_dim": cfg.resolved_head_dim, "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": cfg.norm_eps,
        "attention_bias": False, "attention_dropout": cfg.drop_rate,
        "query_pre_attn_scalar": _int_if_whole(cfg.query_pre_attn_scalar or cfg.resolved_head_dim),
        "sliding_window": cfg.sliding_window,
        "layer_types": [f"{t}_attention" for t in cfg.layer_types],
        "final_logit_softcapping": None, "attn_logit_softcapping": None,
        "tie_word_embeddings": cfg.tie_embeddings,
        # transformers 5 reads rope_parameters per layer type; older versions the three legacy keys
        "rope_parameters": {"full_attention": full,
                            "sliding_attention": {"rope_type": "default", "rope_theta": cfg.sliding_rope_base}},
        "rope_theta": cfg.rope_base, "rope_local_base_freq": cfg.sliding_rope_base,
        "rope_scaling": {k: v for k, v in full.items() if k != "rope_theta"} if cfg.rope_scaling else None,
    }
    out.update({k: list(v) if isinstance(v, tuple) else v for k, v in cfg.extra})
    return out


FAMILY = Family(
    name="gemma3", model_types=("gemma3_text", "gemma3"), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, strip_prefixes=_STRIP, configs=CONFIGS,
)
