"""OLMo 3 (Allen Institute for AI, 2025): 7B and 32B, fully open (data, code and checkpoints).

Llama's SwiGLU, RoPE and RMSNorm with three changes, each a config switch on the shared blocks:

* **post-norm placement**: no norm in front of attention or the MLP; their *outputs* are normalized before they
  join the residual stream (``x + norm(att(x))``), as in OLMo 2. The stream itself is never normalized, so
  this is not the original Transformer's post-norm;
* **QK-norm over the whole projection**: one RMSNorm over all query features (``n_heads * head_dim``) and one
  over all key features, before the split into heads (Qwen3 and Gemma 3 normalize each head separately);
* **3:1 sliding/full attention**: three layers with a 4096-token window, then one full-attention layer.
  The context was extended to 64k with YaRN applied to the full-attention layers only; the sliding layers
  keep unscaled RoPE of the same base.

7B uses multi-head attention (32 key/value heads), 32B grouped-query attention with 8.
"""

from __future__ import annotations

from typing import Any

from ..nn.rope import RopeScaling
from .config import ModelConfig
from .family import Family
from .hf_config import llama_like_to_hf, rope_from_hf, token_ids_from_hf
from .weights import WeightMap

_TOKENS = (("eos_token_id", 100257), ("pad_token_id", 100277))
_BASE = 500_000.0
# YaRN on the full-attention layers: 8k pre-training context times 8; the attention factor is the checkpoints'
_YARN = RopeScaling("yarn", factor=8.0, original_context_length=8192, beta_fast=32.0, beta_slow=1.0,
                    attention_factor=1.2079441541679836)


def olmo3_layer_types(n_layers: int) -> tuple[str, ...]:
    """Three sliding-window layers, then one full-attention layer, repeated."""
    return tuple("full" if (i + 1) % 4 == 0 else "sliding" for i in range(n_layers))


def olmo3_config(**kw: Any) -> ModelConfig:
    defaults = dict(
        family="olmo3", vocab_size=100_278, context_length=65_536, norm="rmsnorm", norm_eps=1e-6,
        norm_placement="post", ffn="swiglu", rope_base=_BASE, rope_scaling=_YARN, sliding_rope_base=_BASE,
        sliding_window=4096, qk_norm=True, qk_norm_scope="projection", tie_embeddings=False, extra=_TOKENS,
    )
    merged = {**defaults, **kw}
    merged.setdefault("layer_types", olmo3_layer_types(merged["n_layers"]))
    return ModelConfig(**merged)


OLMO3_7B = olmo3_config(emb_dim=4096, n_layers=32, n_heads=32, n_kv_groups=32, hidden_dim=11_008)
OLMO3_32B = olmo3_config(emb_dim=5120, n_layers=64, n_heads=40, n_kv_groups=8, hidden_dim=27_648)
CONFIGS = {
    "olmo3-7b": OLMO3_7B,
    "olmo3-32b": OLMO3_32B,
    # the post-trained checkpoints share the architecture (their chat format comes with the tokenizer)
    "olmo3-7b-instruct": OLMO3_7B,
    "olmo3-7b-think": OLMO3_7B,
    "olmo3-32b-think": OLMO3_32B,
}

_B = "trf_blocks.{}"
WEIGHT_MAP = WeightMap({
    "model.embed_tokens.weight": "tok_emb.weight",
    "model.layers.{}.self_attn.q_proj.weight": f"{_B}.att.W_query.weight",
    "model.layers.{}.self_attn.k_proj.weight": f"{_B}.att.W_key.weight",
    "model.layers.{}.self_attn.v_proj.weight": f"{_B}.att.W_value.weight",
    "model.layers.{}.self_attn.o_proj.weight": f"{_B}.att.out_proj.weight",
    "model.layers.{}.self_attn.q_norm.weight": f"{_B}.att.q_norm.scale",  # (n_heads * head_dim,)
    "model.layers.{}.self_attn.k_norm.weight": f"{_B}.att.k_norm.scale",  # (n_kv_groups * head_dim,)
    # both norms sit after their sub-layer (Llama's "post_attention_layernorm" is the pre-MLP norm)
    "model.layers.{}.post_attention_layernorm.weight": f"{_B}.post_att_norm.scale",
    "model.layers.{}.mlp.gate_proj.weight": f"{_B}.ff.fc1.weight",
    "model.layers.{}.mlp.up_proj.weight": f"{_B}.ff.fc2.weight",
    "model.layers.{}.mlp.down_proj.weight": f"{_B}.ff.fc3.weight",
    "model.layers.{}.post_feedforward_layernorm.weight": f"{_B}.post_ff_norm.scale",
    "model.norm.weight": "final_norm.scale",
    "lm_head.weight": "out_head.weight",
}, ignore=(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq",))

_LAYER_TYPES = {"sliding_attention": "sliding", "full_attention": "full"}


def _flat_rope(c: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` with transformers 5's per-layer-type ``rope_parameters`` folded into the flat layout that
    :func:`rope_from_hf` reads (the full-attention entry: the sliding one must be the same base, unscaled)."""
    params = c.get("rope_parameters") or {}
    if "full_attention" not in params:
        return c
    full, sliding = dict(params["full_attention"]), dict(params.get("sliding_attention") or {})
    if sliding.get("rope_type", "default") != "default" or sliding.get("rope_theta", full.get("rope_theta")) != (
            full.get("rope_theta")):
        raise ValueError("OLMo 3 sliding layers with their own RoPE base or scaling are not supported")
    return {**c, "rope_parameters": full}


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    if c.get("attention_bias"):
        raise ValueError("OLMo 3 checkpoints with attention_bias=true are not supported")
    base, scaling = rope_from_hf(_flat_rope(c))
    heads, n_layers = c["num_attention_heads"], c["num_hidden_layers"]
    if c.get("layer_types"):
        layer_types = tuple(_LAYER_TYPES[t] for t in c["layer_types"])
    else:
        layer_types = olmo3_layer_types(n_layers)
    window = c.get("sliding_window", 4096)
    if "sliding" not in layer_types:
        window = None
        layer_types = None
    return olmo3_config(
        vocab_size=c["vocab_size"], context_length=c["max_position_embeddings"], emb_dim=c["hidden_size"],
        n_layers=n_layers, n_heads=heads, n_kv_groups=c.get("num_key_value_heads") or heads,
        head_dim=c.get("head_dim") or c["hidden_size"] // heads, hidden_dim=c["intermediate_size"],
        norm_eps=c.get("rms_norm_eps", 1e-6), rope_base=base, rope_scaling=scaling,
        # with no scaling both kinds of layer rotate alike, so they need no RoPE of their own
        sliding_rope_base=base if scaling is not None and window is not None else None,
        sliding_window=window, layer_types=layer_types,
        tie_embeddings=bool(c.get("tie_word_embeddings", False)), extra=token_ids_from_hf(c),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    if cfg.sliding_rope_base not in (None, cfg.rope_base):
        raise ValueError("OLMo 3's sliding layers share the RoPE base of the full layers; "
                         f"this config gives them {cfg.sliding_rope_base} instead of {cfg.rope_base}")
    if cfg.sliding_window is not None and cfg.rope_scaling is not None and cfg.sliding_rope_base is None:
        raise ValueError("OLMo 3 scales RoPE in the full-attention layers only; set sliding_rope_base=rope_base")
    out = llama_like_to_hf(cfg, "olmo3", "Olmo3ForCausalLM")
    if cfg.resolved_head_dim * cfg.n_heads != cfg.emb_dim:
        raise ValueError("OLMo 3 derives head_dim from hidden_size / num_attention_heads; "
                         f"this config has head_dim {cfg.resolved_head_dim} with {cfg.n_heads} heads of {cfg.emb_dim}")
    del out["head_dim"], out["rope_scaling"]
    # transformers 5 reads RoPE per layer type: the scaled one for full attention, plain for the sliding layers
    full = out.pop("rope_parameters")
    out["rope_parameters"] = {"full_attention": full,
                              "sliding_attention": {"rope_type": "default", "rope_theta": cfg.rope_base}}
    types = cfg.layer_types or ("sliding" if cfg.sliding_window else "full",) * cfg.n_layers
    out.update(sliding_window=cfg.sliding_window, layer_types=[f"{t}_attention" for t in types])
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        out.setdefault(key, None)  # not Olmo3Config's defaults, which a config without these ids does not mean
    return out


FAMILY = Family(
    name="olmo3", model_types=("olmo3",), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, configs=CONFIGS,
)
