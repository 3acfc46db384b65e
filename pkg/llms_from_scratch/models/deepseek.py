"""DeepSeek-V3 (DeepSeek-AI, 2024): multi-head latent attention and DeepSeekMoE.

What is distinctive (each piece is a shared block; this file only configures and maps it):

* attention is MLA (``nn/mla.py``): low-rank queries (``q_lora_rank`` 1536) and a cached 512-wide latent plus
  one 64-wide RoPE key, RoPE in DeepSeek's interleaved pair layout, YaRN (factor 40 over 4096 tokens) with
  ``mscale**2`` folded into the softmax scale;
* the first 3 layers keep a dense SwiGLU (width 18432); the other 58 use 256 routed experts (width 2048) with
  sigmoid scores, group-limited top-8 (8 groups, best 4 kept), a selection-only correction bias, weights
  renormalized and scaled by 2.5, plus one shared expert (``nn/moe.py``);
* the released weights are FP8 with one scale per 128 x 128 block, dequantized while loading.

``q_lora_rank=None`` gives the DeepSeek-V2-Lite-style single query projection. The multi-token-prediction
layer stored after the last layer (``model.layers.61.*``) is not used by the main model and is skipped here;
``mtp.load_mtp`` reads it and ``save_hf_checkpoint(model, folder, extras=[mtp])`` writes it back.
"""

from __future__ import annotations

from typing import Any

from ..nn.mla import MLAConfig
from ..nn.moe import MoEConfig
from ..nn.rope import RopeScaling
from .checkpoint_hooks import check_expert_count, dequantize_fp8_blocks
from .config import ModelConfig
from .family import Family
from .hf_config import rope_from_hf, rope_to_hf, token_ids_from_hf
from .weights import WeightMap

DEEPSEEK_V3 = ModelConfig(
    family="deepseek", vocab_size=129280, context_length=163840, emb_dim=7168, n_layers=61, n_heads=128,
    head_dim=192, hidden_dim=18432, norm="rmsnorm", norm_eps=1e-6, ffn="swiglu", rope_base=10_000.0,
    rope_scaling=RopeScaling("yarn", factor=40.0, original_context_length=4096, beta_fast=32.0, beta_slow=1.0,
                             attention_factor=1.0),  # mscale / mscale_all_dim = 1: cos and sin stay unscaled
    mla=MLAConfig(kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, q_lora_rank=1536,
                  rope_interleaved=True, mscale_all_dim=1.0),
    moe=MoEConfig(n_experts=256, n_experts_per_tok=8, hidden_dim=2048, scoring="sigmoid", norm_topk_prob=True,
                  n_groups=8, topk_groups=4, routed_scaling=2.5, n_shared_experts=1, correction_bias=True,
                  first_dense_layers=3),
    extra=(("bos_token_id", 0), ("eos_token_id", 1), ("fp8_block_size", (128, 128))),
)
CONFIGS = {"deepseek-v3": DEEPSEEK_V3, "deepseek-v3-base": DEEPSEEK_V3}

_B = "trf_blocks.{}"
_L = "model.layers.{}"
WEIGHT_MAP = WeightMap({
    "model.embed_tokens.weight": "tok_emb.weight",
    f"{_L}.input_layernorm.weight": f"{_B}.norm1.scale",
    f"{_L}.self_attn.q_proj.weight": f"{_B}.att.W_query.weight",  # q_lora_rank = None
    f"{_L}.self_attn.q_a_proj.weight": f"{_B}.att.W_q_down.weight",
    f"{_L}.self_attn.q_a_layernorm.weight": f"{_B}.att.q_norm.scale",
    f"{_L}.self_attn.q_b_proj.weight": f"{_B}.att.W_q_up.weight",
    f"{_L}.self_attn.kv_a_proj_with_mqa.weight": f"{_B}.att.W_kv_down.weight",
    f"{_L}.self_attn.kv_a_layernorm.weight": f"{_B}.att.kv_norm.scale",
    f"{_L}.self_attn.kv_b_proj.weight": f"{_B}.att.W_kv_up.weight",
    f"{_L}.self_attn.o_proj.weight": f"{_B}.att.out_proj.weight",
    f"{_L}.post_attention_layernorm.weight": f"{_B}.norm2.scale",
    # dense layers (the first moe.first_dense_layers)
    f"{_L}.mlp.gate_proj.weight": f"{_B}.ff.fc1.weight",
    f"{_L}.mlp.up_proj.weight": f"{_B}.ff.fc2.weight",
    f"{_L}.mlp.down_proj.weight": f"{_B}.ff.fc3.weight",
    # MoE layers
    f"{_L}.mlp.gate.weight": f"{_B}.ff.gate.weight",
    f"{_L}.mlp.gate.e_score_correction_bias": f"{_B}.ff.correction_bias",
    f"{_L}.mlp.experts.{{e}}.gate_proj.weight": f"{_B}.ff.experts.{{e}}.fc1.weight",
    f"{_L}.mlp.experts.{{e}}.up_proj.weight": f"{_B}.ff.experts.{{e}}.fc2.weight",
    f"{_L}.mlp.experts.{{e}}.down_proj.weight": f"{_B}.ff.experts.{{e}}.fc3.weight",
    f"{_L}.mlp.shared_experts.gate_proj.weight": f"{_B}.ff.shared_experts.fc1.weight",
    f"{_L}.mlp.shared_experts.up_proj.weight": f"{_B}.ff.shared_experts.fc2.weight",
    f"{_L}.mlp.shared_experts.down_proj.weight": f"{_B}.ff.shared_experts.fc3.weight",
    "model.norm.weight": "final_norm.scale",
    "lm_head.weight": "out_head.weight",
}, ignore=(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq",))


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    if c.get("topk_method", "noaux_tc") != "noaux_tc" or c.get("scoring_func", "sigmoid") != "sigmoid":
        raise ValueError("only DeepSeek-V3's routing (scoring_func='sigmoid', topk_method='noaux_tc') is supported")
    if c.get("moe_layer_freq", 1) != 1:
        raise ValueError("DeepSeek configs with moe_layer_freq != 1 are not supported")
    if c.get("attention_bias"):
        raise ValueError("DeepSeek configs with attention_bias=true are not supported")
    base, scaling = rope_from_hf(c)
    spec = {**(c.get("rope_scaling") or {}), **(c.get("rope_parameters") or {})}
    heads = c["num_attention_heads"]
    extra = token_ids_from_hf(c)
    quant = c.get("quantization_config") or {}
    if quant:
        if quant.get("quant_method") != "fp8":
            raise ValueError(f"quantization {quant.get('quant_method')!r} is not supported (only DeepSeek's fp8)")
        extra += (("fp8_block_size", tuple(quant.get("weight_block_size", (128, 128)))),)
    return ModelConfig(
        family="deepseek", vocab_size=c["vocab_size"], context_length=c["max_position_embeddings"],
        emb_dim=c["hidden_size"], n_layers=c["num_hidden_layers"], n_heads=heads,
        head_dim=c["qk_nope_head_dim"] + c["qk_rope_head_dim"], hidden_dim=c["intermediate_size"],
        norm="rmsnorm", norm_eps=c.get("rms_norm_eps", 1e-6), ffn="swiglu", rope_base=base, rope_scaling=scaling,
        tie_embeddings=bool(c.get("tie_word_embeddings", False)), extra=extra,
        mla=MLAConfig(kv_lora_rank=c["kv_lora_rank"], qk_nope_head_dim=c["qk_nope_head_dim"],
                      qk_rope_head_dim=c["qk_rope_head_dim"], v_head_dim=c["v_head_dim"],
                      q_lora_rank=c.get("q_lora_rank"), rope_interleaved=bool(c.get("rope_interleave", True)),
                      mscale_all_dim=float(spec.get("mscale_all_dim") or 0.0) if scaling is not None else 0.0),
        moe=MoEConfig(n_experts=c.get("n_routed_experts") or c["num_local_experts"],  # alias in transformers 5
                      n_experts_per_tok=c["num_experts_per_tok"],
                      hidden_dim=c["moe_intermediate_size"], scoring="sigmoid",
                      norm_topk_prob=bool(c.get("norm_topk_prob", True)), n_groups=c.get("n_group") or 1,
                      topk_groups=c.get("topk_group") or 1, routed_scaling=float(c.get("routed_scaling_factor", 1.0)),
                      n_shared_experts=c.get("n_shared_experts") or 0, correction_bias=True,
                      first_dense_layers=c.get("first_k_dense_replace") or 0),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    mla, moe = cfg.mla, cfg.moe
    rope = rope_to_hf(cfg)
    if cfg.rope_scaling is not None:
        for key in ("rope_scaling", "rope_parameters"):
            rope[key]["mscale_all_dim"] = mla.mscale_all_dim  # the softmax-scale correction reads it from here
    out = {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.context_length, "hidden_size": cfg.emb_dim,
        "intermediate_size": cfg.hidden_dim, "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_heads, "hidden_act": "silu", "rms_norm_eps": cfg.norm_eps,
        "attention_bias": False, "attention_dropout": cfg.drop_rate, "tie_word_embeddings": cfg.tie_embeddings,
        "q_lora_rank": mla.q_lora_rank, "kv_lora_rank": mla.kv_lora_rank, "qk_nope_head_dim": mla.qk_nope_head_dim,
        "qk_rope_head_dim": mla.qk_rope_head_dim, "v_head_dim": mla.v_head_dim, "rope_interleave": mla.rope_interleaved,
        "n_routed_experts": moe.n_experts, "num_experts_per_tok": moe.n_experts_per_tok,
        "moe_intermediate_size": moe.hidden_dim, "n_group": moe.n_groups, "topk_group": moe.topk_groups,
        "routed_scaling_factor": moe.routed_scaling, "n_shared_experts": moe.n_shared_experts,
        "norm_topk_prob": moe.norm_topk_prob, "first_k_dense_replace": moe.first_dense_layers,
        "scoring_func": "sigmoid", "topk_method": "noaux_tc", "moe_layer_freq": 1, **rope,
        "num_nextn_predict_layers": 0,  # save_hf_checkpoint(..., extras=[mtp]) writes 1 with the MTP layer
    }
    out.update({k: v for k, v in cfg.extra if k != "fp8_block_size"})  # weights are exported dequantized
    return out


def prepare_checkpoint(names, get_tensor, cfg: ModelConfig):
    # skip the multi-token-prediction layer (index n_layers): the main model's forward never uses it
    mtp = f"model.layers.{cfg.n_layers}."
    names = [n for n in names if not n.startswith(mtp)]
    names, get_tensor = check_expert_count(names, get_tensor, cfg)
    return dequantize_fp8_blocks(names, get_tensor, cfg)


FAMILY = Family(
    name="deepseek", model_types=("deepseek_v3",), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, prepare_checkpoint=prepare_checkpoint, configs=CONFIGS,
)
