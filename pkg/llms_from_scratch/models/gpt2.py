"""GPT-2 (OpenAI, 2019): the book's model. Learned positions, LayerNorm with bias, tanh-GELU MLP, biases on
every projection, multi-head attention, output head tied to the token embedding.

Checkpoint quirk: OpenAI's ``Conv1D`` stores weights as (in, out), and ``c_attn`` holds the query, key and
value projections side by side, so the map splits and transposes it.
"""

from __future__ import annotations

from typing import Any

from .config import ModelConfig, register_config
from .family import Family, register_family
from .weights import Rename, Split, WeightMap


def gpt2_config(emb_dim: int, n_layers: int, n_heads: int) -> ModelConfig:
    return ModelConfig(
        family="gpt2", vocab_size=50257, context_length=1024, emb_dim=emb_dim, n_layers=n_layers,
        n_heads=n_heads, hidden_dim=4 * emb_dim, norm="layernorm", norm_eps=1e-5, ffn="gelu_tanh",
        learned_pos_emb=True, qkv_bias=True, out_bias=True, ffn_bias=True, tie_embeddings=True,
        extra=(("bos_token_id", 50256), ("eos_token_id", 50256)),
    )


GPT2_124M = register_config("gpt2-124m", gpt2_config(768, 12, 12))
GPT2_355M = register_config("gpt2-355m", gpt2_config(1024, 24, 16))
GPT2_774M = register_config("gpt2-774m", gpt2_config(1280, 36, 20))
GPT2_1558M = register_config("gpt2-1558m", gpt2_config(1600, 48, 25))

_B = "trf_blocks.{}"
WEIGHT_MAP = WeightMap(
    {
        "wte.weight": "tok_emb.weight",
        "wpe.weight": "pos_emb.weight",
        "h.{}.ln_1.weight": f"{_B}.norm1.scale",
        "h.{}.ln_1.bias": f"{_B}.norm1.shift",
        "h.{}.attn.c_attn.weight": Split((f"{_B}.att.W_query.weight", f"{_B}.att.W_key.weight",
                                          f"{_B}.att.W_value.weight"), transpose=True),
        "h.{}.attn.c_attn.bias": Split((f"{_B}.att.W_query.bias", f"{_B}.att.W_key.bias", f"{_B}.att.W_value.bias")),
        "h.{}.attn.c_proj.weight": Rename(f"{_B}.att.out_proj.weight", transpose=True),
        "h.{}.attn.c_proj.bias": f"{_B}.att.out_proj.bias",
        "h.{}.ln_2.weight": f"{_B}.norm2.scale",
        "h.{}.ln_2.bias": f"{_B}.norm2.shift",
        "h.{}.mlp.c_fc.weight": Rename(f"{_B}.ff.fc1.weight", transpose=True),
        "h.{}.mlp.c_fc.bias": f"{_B}.ff.fc1.bias",
        "h.{}.mlp.c_proj.weight": Rename(f"{_B}.ff.fc2.weight", transpose=True),
        "h.{}.mlp.c_proj.bias": f"{_B}.ff.fc2.bias",
        "ln_f.weight": "final_norm.scale",
        "ln_f.bias": "final_norm.shift",
        "lm_head.weight": "out_head.weight",
    },
    # causal-mask buffers that old checkpoints stored
    ignore=(r"h\.\d+\.attn\.(masked_)?bias",),
)


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    emb = c["n_embd"]
    return ModelConfig(
        family="gpt2", vocab_size=c["vocab_size"], context_length=c["n_positions"], emb_dim=emb,
        n_layers=c["n_layer"], n_heads=c["n_head"], hidden_dim=c.get("n_inner") or 4 * emb, norm="layernorm",
        norm_eps=c.get("layer_norm_epsilon", 1e-5), ffn="gelu_tanh", learned_pos_emb=True, qkv_bias=True,
        out_bias=True, ffn_bias=True, tie_embeddings=c.get("tie_word_embeddings", True),
        extra=(("bos_token_id", c.get("bos_token_id")), ("eos_token_id", c.get("eos_token_id"))),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg.vocab_size,
        "n_positions": cfg.context_length, "n_embd": cfg.emb_dim, "n_layer": cfg.n_layers, "n_head": cfg.n_heads,
        "n_inner": cfg.hidden_dim, "activation_function": "gelu_new", "layer_norm_epsilon": cfg.norm_eps,
        "resid_pdrop": cfg.drop_rate, "embd_pdrop": cfg.drop_rate, "attn_pdrop": cfg.drop_rate,
        "tie_word_embeddings": cfg.tie_embeddings,
        "bos_token_id": cfg.info("bos_token_id", 50256), "eos_token_id": cfg.info("eos_token_id", 50256),
    }


FAMILY = register_family(Family(
    name="gpt2", model_types=("gpt2",), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, strip_prefixes=("transformer.",), save_prefix="transformer.",
))
