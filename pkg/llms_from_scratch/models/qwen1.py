"""Qwen (the first generation, Alibaba, 2023): a Llama-like decoder with GPT-2-style weight names.

Numerically it is Qwen2 with full multi-head attention: RMSNorm, RoPE, SwiGLU, biases on q/k/v (none on the
output projection), untied head. Its checkpoint layout is its own:

* ``attn.c_attn`` fuses q, k and v into one ``nn.Linear`` (rows ``[q | k | v]``, stored (out, in), with bias);
* the MLP computes ``c_proj(w1(x) * silu(w2(x)))``, so **w2 is the gate** and w1 the up projection;
* ``intermediate_size`` in ``config.json`` is twice the MLP width.

Beyond ``seq_length`` tokens the original code switches on dynamic NTK RoPE and logN attention scaling.
This package does not implement them, so such configs are marked ``strict_context`` and longer inputs are
refused with a clear error instead of silently computing something else.
"""

from __future__ import annotations

from typing import Any

from .config import ModelConfig
from .family import Family
from .hf_config import token_ids_from_hf
from .weights import Split, WeightMap

_EXTRA = (("bos_token_id", 151643), ("eos_token_id", 151643))


def qwen1_config(emb_dim: int, n_layers: int, n_heads: int, hidden_dim: int, seq_length: int, max_pos: int,
                 vocab_size: int = 151936) -> ModelConfig:
    return ModelConfig(
        family="qwen1", vocab_size=vocab_size, context_length=seq_length, emb_dim=emb_dim, n_layers=n_layers,
        n_heads=n_heads, head_dim=128, hidden_dim=hidden_dim, norm="rmsnorm", norm_eps=1e-6, ffn="swiglu",
        rope_base=10_000.0, qkv_bias=True, out_bias=False, strict_context=True,
        extra=_EXTRA + (("max_position_embeddings", max_pos),),
    )


# hidden_dim is the MLP width: half of config.json's intermediate_size
QWEN1_1_8B = qwen1_config(2048, 24, 16, 5504, seq_length=8192, max_pos=8192)
QWEN1_7B = qwen1_config(4096, 32, 32, 11008, seq_length=8192, max_pos=32768)
QWEN1_14B = qwen1_config(5120, 40, 40, 13696, seq_length=2048, max_pos=8192,
                                                      vocab_size=152064)
CONFIGS = {"qwen1-1.8b": QWEN1_1_8B, "qwen1-7b": QWEN1_7B, "qwen1-14b": QWEN1_14B}

_B = "trf_blocks.{}"
_H = "transformer.h.{}"
WEIGHT_MAP = WeightMap({
    "transformer.wte.weight": "tok_emb.weight",
    f"{_H}.ln_1.weight": f"{_B}.norm1.scale",
    f"{_H}.attn.c_attn.weight": Split((f"{_B}.att.W_query.weight", f"{_B}.att.W_key.weight", f"{_B}.att.W_value.weight")),
    f"{_H}.attn.c_attn.bias": Split((f"{_B}.att.W_query.bias", f"{_B}.att.W_key.bias", f"{_B}.att.W_value.bias")),
    f"{_H}.attn.c_proj.weight": f"{_B}.att.out_proj.weight",
    f"{_H}.ln_2.weight": f"{_B}.norm2.scale",
    f"{_H}.mlp.w2.weight": f"{_B}.ff.fc1.weight",  # w2 is the gate (goes through silu)
    f"{_H}.mlp.w1.weight": f"{_B}.ff.fc2.weight",  # w1 is the up projection
    f"{_H}.mlp.c_proj.weight": f"{_B}.ff.fc3.weight",
    "transformer.ln_f.weight": "final_norm.scale",
    "lm_head.weight": "out_head.weight",
}, ignore=(r"transformer\.rotary_emb\.inv_freq", r"transformer\.h\.\d+\.attn\.rotary_emb\.inv_freq"))


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    if c.get("rotary_pct", 1.0) != 1.0:
        raise ValueError(f"Qwen1 configs with rotary_pct={c['rotary_pct']} (partial RoPE) are not supported")
    if not c.get("no_bias", True):
        raise ValueError("Qwen1 configs with no_bias=false are not supported")
    heads = c["num_attention_heads"]
    # dynamic NTK / logN change the model beyond seq_length: refuse to go there rather than differ silently
    strict = bool(c.get("use_dynamic_ntk", True) or c.get("use_logn_attn", True))
    max_pos = c.get("max_position_embeddings", c["seq_length"])
    return ModelConfig(
        family="qwen1", vocab_size=c["vocab_size"], context_length=c["seq_length"] if strict else max_pos,
        emb_dim=c["hidden_size"], n_layers=c["num_hidden_layers"], n_heads=heads,
        head_dim=c.get("kv_channels") or c["hidden_size"] // heads, hidden_dim=c["intermediate_size"] // 2,
        norm="rmsnorm", norm_eps=c.get("layer_norm_epsilon", 1e-6), ffn="swiglu",
        rope_base=float(c.get("rotary_emb_base", 10_000.0)), qkv_bias=True, out_bias=False, strict_context=strict,
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        extra=token_ids_from_hf(c) + (("max_position_embeddings", max_pos),),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    if cfg.resolved_kv_groups != cfg.n_heads:
        raise ValueError("Qwen1 has no grouped-query attention: n_kv_groups must equal n_heads")
    out = {
        "architectures": ["QWenLMHeadModel"], "model_type": "qwen", "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.emb_dim, "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "kv_channels": cfg.resolved_head_dim, "intermediate_size": 2 * cfg.hidden_dim,
        "layer_norm_epsilon": cfg.norm_eps, "rotary_emb_base": cfg.rope_base, "rotary_pct": 1.0,
        "seq_length": cfg.context_length, "max_position_embeddings": cfg.context_length,
        "use_dynamic_ntk": cfg.strict_context, "use_logn_attn": cfg.strict_context, "no_bias": True,
        "scale_attn_weights": True, "tie_word_embeddings": cfg.tie_embeddings,
    }
    out.update(dict(cfg.extra))
    return out


FAMILY = Family(
    name="qwen1", model_types=("qwen",), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, configs=CONFIGS,
)
