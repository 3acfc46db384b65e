"""BERT (Google, 2018): a bidirectional encoder pre-trained with masked-language modelling.

Post-norm blocks, LayerNorm eps 1e-12, exact (erf) GELU, biases everywhere, learned positions plus segment
embeddings, MLM head tied to the word embedding. Hub files may still name LayerNorm parameters
``gamma``/``beta`` and carry the pooler and next-sentence heads, which the map accepts and ignores.
"""

from __future__ import annotations

from typing import Any

from .config import ModelConfig
from .encoder import EncoderMLM
from .family import Family
from .weights import WeightMap


def bert_config(emb_dim: int, n_layers: int, n_heads: int, vocab_size: int = 30522) -> ModelConfig:
    return ModelConfig(
        family="bert", vocab_size=vocab_size, context_length=512, emb_dim=emb_dim, n_layers=n_layers,
        n_heads=n_heads, hidden_dim=4 * emb_dim, norm="layernorm", norm_eps=1e-12, ffn="gelu",
        learned_pos_emb=True, qkv_bias=True, out_bias=True, ffn_bias=True, tie_embeddings=True, type_vocab_size=2,
        extra=(("pad_token_id", 0),),
    )


BERT_BASE_UNCASED = bert_config(768, 12, 12)
BERT_BASE_CASED = bert_config(768, 12, 12, vocab_size=28996)
BERT_LARGE_UNCASED = bert_config(1024, 24, 16)
ALL_MINILM_L6_V2 = bert_config(384, 6, 12).replace(hidden_dim=1536)
CONFIGS = {
    "bert-base-uncased": BERT_BASE_UNCASED,
    "bert-base-cased": BERT_BASE_CASED,
    "bert-large-uncased": BERT_LARGE_UNCASED,
    "all-minilm-l6-v2": ALL_MINILM_L6_V2,
}

_L = "encoder.layer.{}"
_B = "trf_blocks.{}"
_ENTRIES: dict[str, str] = {
    "embeddings.word_embeddings.weight": "tok_emb.weight",
    "embeddings.position_embeddings.weight": "pos_emb.weight",
    "embeddings.token_type_embeddings.weight": "type_emb.weight",
    "embeddings.LayerNorm.{w}": "emb_norm.{s}",
    f"{_L}.attention.self.query.weight": f"{_B}.att.W_query.weight",
    f"{_L}.attention.self.query.bias": f"{_B}.att.W_query.bias",
    f"{_L}.attention.self.key.weight": f"{_B}.att.W_key.weight",
    f"{_L}.attention.self.key.bias": f"{_B}.att.W_key.bias",
    f"{_L}.attention.self.value.weight": f"{_B}.att.W_value.weight",
    f"{_L}.attention.self.value.bias": f"{_B}.att.W_value.bias",
    f"{_L}.attention.output.dense.weight": f"{_B}.att.out_proj.weight",
    f"{_L}.attention.output.dense.bias": f"{_B}.att.out_proj.bias",
    f"{_L}.attention.output.LayerNorm.{{w}}": f"{_B}.norm1.{{s}}",
    f"{_L}.intermediate.dense.weight": f"{_B}.ff.fc1.weight",
    f"{_L}.intermediate.dense.bias": f"{_B}.ff.fc1.bias",
    f"{_L}.output.dense.weight": f"{_B}.ff.fc2.weight",
    f"{_L}.output.dense.bias": f"{_B}.ff.fc2.bias",
    f"{_L}.output.LayerNorm.{{w}}": f"{_B}.norm2.{{s}}",
    "cls.predictions.transform.dense.weight": "mlm_dense.weight",
    "cls.predictions.transform.dense.bias": "mlm_dense.bias",
    "cls.predictions.transform.LayerNorm.{w}": "mlm_norm.{s}",
    "cls.predictions.bias": "out_head.bias",
    "cls.predictions.decoder.weight": "out_head.weight",
}


def _with_norm_names(entries: dict[str, str], weight: str, bias: str) -> dict[str, str]:
    out = {}
    for hf, ours in entries.items():
        if "{w}" in hf:
            out[hf.replace("{w}", weight)] = ours.replace("{s}", "scale")
            out[hf.replace("{w}", bias)] = ours.replace("{s}", "shift")
        else:
            out[hf] = ours
    return out


WEIGHT_MAP = WeightMap(
    # current names first; the legacy gamma/beta spelling maps to the same parameters
    {**_with_norm_names(_ENTRIES, "weight", "bias"), **_with_norm_names(_ENTRIES, "gamma", "beta")},
    ignore=(r"pooler\..*", r"cls\.seq_relationship\..*", r"embeddings\.position_ids",
            r"cls\.predictions\.decoder\.bias"),
)
# export writes only the current spelling
EXPORT_MAP = WeightMap(_with_norm_names(_ENTRIES, "weight", "bias"))


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    if c.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"BERT with hidden_act={c['hidden_act']!r} is not supported (only 'gelu')")
    return ModelConfig(
        family="bert", vocab_size=c["vocab_size"], context_length=c["max_position_embeddings"],
        emb_dim=c["hidden_size"], n_layers=c["num_hidden_layers"], n_heads=c["num_attention_heads"],
        hidden_dim=c["intermediate_size"], norm="layernorm", norm_eps=c.get("layer_norm_eps", 1e-12), ffn="gelu",
        learned_pos_emb=True, qkv_bias=True, out_bias=True, ffn_bias=True,
        tie_embeddings=c.get("tie_word_embeddings", True), type_vocab_size=c.get("type_vocab_size", 2),
        extra=(("pad_token_id", c.get("pad_token_id", 0)),),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.emb_dim, "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "intermediate_size": cfg.hidden_dim, "hidden_act": "gelu", "max_position_embeddings": cfg.context_length,
        "type_vocab_size": cfg.type_vocab_size, "layer_norm_eps": cfg.norm_eps,
        "hidden_dropout_prob": cfg.drop_rate, "attention_probs_dropout_prob": cfg.drop_rate,
        "pad_token_id": cfg.info("pad_token_id", 0), "tie_word_embeddings": cfg.tie_embeddings,
    }


FAMILY = Family(
    name="bert", model_types=("bert",), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, strip_prefixes=("bert.",), save_prefix="bert.", export_map=EXPORT_MAP,
    configs=CONFIGS, model_class=EncoderMLM,
)
