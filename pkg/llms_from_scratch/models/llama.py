"""Llama 2, Llama 3 / 3.1 / 3.2 (Meta) and SmolLM2 (Hugging Face, Llama architecture).

Pre-norm RMSNorm, SwiGLU feed-forward, RoPE, no biases. Llama 3 added grouped-query attention (8 key/value
heads) and a 128k-token vocabulary; 3.1/3.2 stretch RoPE with the "llama3" scaling; 3.2 ties the output head
to the token embedding. Hub checkpoints (and this package) use split-half RoPE; Meta's original files and
GGUF files store q/k rows in interleaved order, which the loaders permute.
"""

from __future__ import annotations

from typing import Any

from ..nn.rope import RopeScaling
from .config import ModelConfig
from .family import Family
from .hf_config import llama_like_to_hf, rope_from_hf, token_ids_from_hf
from .weights import WeightMap

LLAMA3_TOKENS = (("bos_token_id", 128000), ("eos_token_id", 128001))


def llama_config(**kw: Any) -> ModelConfig:
    defaults = dict(family="llama", norm="rmsnorm", norm_eps=1e-5, ffn="swiglu")
    return ModelConfig(**{**defaults, **kw})


def _llama3_scaling(factor: float) -> RopeScaling:
    return RopeScaling("llama3", factor=factor, original_context_length=8192, low_freq_factor=1.0, high_freq_factor=4.0)


LLAMA2_7B = llama_config(
    vocab_size=32000, context_length=4096, emb_dim=4096, n_layers=32, n_heads=32, n_kv_groups=32,
    hidden_dim=11008, rope_base=10_000.0, extra=(("bos_token_id", 1), ("eos_token_id", 2)),
)
LLAMA3_8B = llama_config(
    vocab_size=128256, context_length=8192, emb_dim=4096, n_layers=32, n_heads=32, n_kv_groups=8,
    hidden_dim=14336, rope_base=500_000.0, extra=LLAMA3_TOKENS,
)
LLAMA3_1_8B = LLAMA3_8B.replace(context_length=131072, rope_scaling=_llama3_scaling(8.0))
LLAMA3_2_1B = llama_config(
    vocab_size=128256, context_length=131072, emb_dim=2048, n_layers=16, n_heads=32, n_kv_groups=8, head_dim=64,
    hidden_dim=8192, rope_base=500_000.0, rope_scaling=_llama3_scaling(32.0), tie_embeddings=True,
    extra=LLAMA3_TOKENS,
)
LLAMA3_2_3B = LLAMA3_2_1B.replace(
    emb_dim=3072, n_layers=28, n_heads=24, head_dim=128,
)

_SMOLLM2_TOKENS = (("bos_token_id", 1), ("eos_token_id", 2))
SMOLLM2_135M = llama_config(
    vocab_size=49152, context_length=8192, emb_dim=576, n_layers=30, n_heads=9, n_kv_groups=3, hidden_dim=1536,
    rope_base=100_000.0, tie_embeddings=True, extra=(("bos_token_id", 0), ("eos_token_id", 0)),
)
SMOLLM2_135M_INSTRUCT = SMOLLM2_135M.replace(extra=_SMOLLM2_TOKENS)
SMOLLM2_360M = SMOLLM2_135M.replace(
    emb_dim=960, n_layers=32, n_heads=15, n_kv_groups=5, hidden_dim=2560)
SMOLLM2_1_7B = SMOLLM2_135M.replace(
    emb_dim=2048, n_layers=24, n_heads=32, n_kv_groups=32, hidden_dim=8192, rope_base=130_000.0)

CONFIGS = {
    "llama2-7b": LLAMA2_7B,
    "llama3-8b": LLAMA3_8B,
    "llama3.1-8b": LLAMA3_1_8B,
    "llama3.2-1b": LLAMA3_2_1B,
    "llama3.2-3b": LLAMA3_2_3B,
    # the instruct checkpoints share the architecture (the chat format comes with the tokenizer)
    "llama3-8b-instruct": LLAMA3_8B,
    "llama3.1-8b-instruct": LLAMA3_1_8B,
    "llama3.2-1b-instruct": LLAMA3_2_1B,
    "llama3.2-3b-instruct": LLAMA3_2_3B,
    "smollm2-135m": SMOLLM2_135M,
    "smollm2-135m-instruct": SMOLLM2_135M_INSTRUCT,
    "smollm2-360m": SMOLLM2_360M,
    "smollm2-360m-instruct": SMOLLM2_360M.replace(extra=_SMOLLM2_TOKENS),
    "smollm2-1.7b": SMOLLM2_1_7B,
    "smollm2-1.7b-instruct": SMOLLM2_1_7B.replace(extra=_SMOLLM2_TOKENS),
}

_B = "trf_blocks.{}"
WEIGHT_MAP = WeightMap({
    "model.embed_tokens.weight": "tok_emb.weight",
    "model.layers.{}.input_layernorm.weight": f"{_B}.norm1.scale",
    "model.layers.{}.self_attn.q_proj.weight": f"{_B}.att.W_query.weight",
    "model.layers.{}.self_attn.k_proj.weight": f"{_B}.att.W_key.weight",
    "model.layers.{}.self_attn.v_proj.weight": f"{_B}.att.W_value.weight",
    "model.layers.{}.self_attn.o_proj.weight": f"{_B}.att.out_proj.weight",
    "model.layers.{}.post_attention_layernorm.weight": f"{_B}.norm2.scale",
    "model.layers.{}.mlp.gate_proj.weight": f"{_B}.ff.fc1.weight",
    "model.layers.{}.mlp.up_proj.weight": f"{_B}.ff.fc2.weight",
    "model.layers.{}.mlp.down_proj.weight": f"{_B}.ff.fc3.weight",
    "model.norm.weight": "final_norm.scale",
    "lm_head.weight": "out_head.weight",
}, ignore=(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq",))


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    base, scaling = rope_from_hf(c)
    if c.get("mlp_bias"):
        raise ValueError("Llama checkpoints with mlp_bias=true are not supported")
    heads = c["num_attention_heads"]
    return llama_config(
        vocab_size=c["vocab_size"], context_length=c["max_position_embeddings"], emb_dim=c["hidden_size"],
        n_layers=c["num_hidden_layers"], n_heads=heads, n_kv_groups=c.get("num_key_value_heads") or heads,
        head_dim=c.get("head_dim") or c["hidden_size"] // heads, hidden_dim=c["intermediate_size"],
        norm_eps=c.get("rms_norm_eps", 1e-6), rope_base=base, rope_scaling=scaling,
        qkv_bias=bool(c.get("attention_bias", False)), out_bias=bool(c.get("attention_bias", False)),
        tie_embeddings=bool(c.get("tie_word_embeddings", False)), extra=token_ids_from_hf(c),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    return llama_like_to_hf(cfg, "llama", "LlamaForCausalLM")


def _attention_bias_entries() -> dict[str, str]:
    # Llama's attention_bias=true puts biases on q, k, v and o (rare, but valid in config.json)
    return {f"model.layers.{{}}.self_attn.{hf}_proj.bias": f"{_B}.att.{ours}.bias"
            for hf, ours in (("q", "W_query"), ("k", "W_key"), ("v", "W_value"), ("o", "out_proj"))}


WEIGHT_MAP.entries.update(WeightMap(_attention_bias_entries()).entries)

FAMILY = Family(
    name="llama", model_types=("llama",), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, configs=CONFIGS,
)
