"""GPT-2 (OpenAI, 2019): the book's model. Learned positions, LayerNorm with bias, tanh-GELU MLP, biases on
every projection, multi-head attention, output head tied to the token embedding.

The zoo's configs come from the project's one table of OpenAI's four sizes (``gpt2_sizes.py``). :data:`WEIGHT_MAP` is the one mapping of GPT-2's tensor names; chapter 5's loader uses it as
:data:`BOOK_WEIGHT_MAP`, the same map with chapter 4's parameter names.

Checkpoint quirk: OpenAI's ``Conv1D`` stores weights as (in, out), and ``c_attn`` holds the query, key and
value projections side by side, so the map splits and transposes it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..gpt2_sizes import GPT2_MODEL_CONFIGS
from .config import ModelConfig
from .family import Family
from .weights import Rename, Split, WeightMap

GPT2_VOCAB_SIZE = 50257
GPT2_CONTEXT_LENGTH = 1024


def make_config(emb_dim: int, n_layers: int, n_heads: int, *, vocab_size: int = GPT2_VOCAB_SIZE,
                context_length: int = GPT2_CONTEXT_LENGTH) -> ModelConfig:
    """The zoo's :class:`ModelConfig` of a GPT-2 with these dimensions (OpenAI's vocabulary and context by default)."""
    return ModelConfig(
        family="gpt2", vocab_size=vocab_size, context_length=context_length, emb_dim=emb_dim, n_layers=n_layers,
        n_heads=n_heads, hidden_dim=4 * emb_dim, norm="layernorm", norm_eps=1e-5, ffn="gelu_tanh",
        learned_pos_emb=True, qkv_bias=True, out_bias=True, ffn_bias=True, tie_embeddings=True,
        extra=(("bos_token_id", 50256), ("eos_token_id", 50256)),
    )


GPT2_124M = make_config(**GPT2_MODEL_CONFIGS["124M"])
GPT2_355M = make_config(**GPT2_MODEL_CONFIGS["355M"])
GPT2_774M = make_config(**GPT2_MODEL_CONFIGS["774M"])
GPT2_1558M = make_config(**GPT2_MODEL_CONFIGS["1558M"])
CONFIGS = {"gpt2-124m": GPT2_124M, "gpt2-355m": GPT2_355M, "gpt2-774m": GPT2_774M, "gpt2-1558m": GPT2_1558M}

_B = "trf_blocks.{}"
# causal-mask buffers that old checkpoints stored
_IGNORE = (r"h\.\d+\.attn\.(masked_)?bias",)
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
    ignore=_IGNORE,
)

# Chapter 4's GPTModel keeps its feed-forward layers in an nn.Sequential (Linear, GELU, Linear), so PyTorch
# names them by position; every other parameter name is the zoo's. The book's map is the same table with
# those two names swapped, so there is one mapping to read and to fix.
_BOOK_NAMES = {".ff.fc1.": ".ff.layers.0.", ".ff.fc2.": ".ff.layers.2."}


def _book_name(name: str) -> str:
    for zoo, book in _BOOK_NAMES.items():
        name = name.replace(zoo, book)
    return name


def _book_entry(entry: Rename | Split) -> Rename | Split:
    if isinstance(entry, Split):
        return dataclasses.replace(entry, ours=tuple(_book_name(o) for o in entry.ours))
    return dataclasses.replace(entry, ours=_book_name(entry.ours))


BOOK_WEIGHT_MAP = WeightMap({hf: _book_entry(e) for hf, e in WEIGHT_MAP.entries.items()}, ignore=_IGNORE)


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


FAMILY = Family(
    name="gpt2", model_types=("gpt2",), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, strip_prefixes=("transformer.",), save_prefix="transformer.", configs=CONFIGS,
)
