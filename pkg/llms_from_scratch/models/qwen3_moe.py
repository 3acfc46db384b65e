"""Qwen3-MoE (Alibaba, 2025): Qwen3's attention with a mixture-of-experts feed-forward in every layer.

Each layer has 128 small SwiGLU experts (width 768 in 30B-A3B); a linear router scores them, a softmax
turns the scores into probabilities, the top 8 are kept and renormalized to sum to 1 (``norm_topk_prob``).
There are no shared experts. So 30.5B parameters are stored but only 3.3B work per token.
Training adds ``router_aux_loss_coef * load_balancing_loss`` (see :func:`llms_from_scratch.nn.moe.load_balancing_loss`).
"""

from __future__ import annotations

from typing import Any

from ..nn.moe import MoEConfig
from .checkpoint_hooks import check_expert_count
from .config import ModelConfig
from .family import Family
from .hf_config import llama_like_to_hf
from .qwen3 import WEIGHT_MAP as QWEN3_WEIGHT_MAP
from .qwen3 import from_hf_config as qwen3_from_hf_config
from .qwen3 import qwen3_config
from .weights import WeightMap

_TOKENS = (("bos_token_id", 151643), ("eos_token_id", 151645))


def qwen3_moe_config(emb_dim: int, n_layers: int, n_heads: int, hidden_dim: int, moe_hidden_dim: int) -> ModelConfig:
    # Qwen3's attention (4 key/value heads here) with 128 experts, top-8, renormalized, in every layer
    return qwen3_config(emb_dim, n_layers, n_heads, hidden_dim, tie=False).replace(
        family="qwen3_moe", n_kv_groups=4, extra=_TOKENS,
        moe=MoEConfig(n_experts=128, n_experts_per_tok=8, hidden_dim=moe_hidden_dim, norm_topk_prob=True),
    )


QWEN3_30B_A3B = qwen3_moe_config(2048, 48, 32, 6144, 768)
QWEN3_235B_A22B = qwen3_moe_config(4096, 94, 64, 12288, 1536)
CONFIGS = {"qwen3-30b-a3b": QWEN3_30B_A3B, "qwen3-235b-a22b": QWEN3_235B_A22B}

_B = "trf_blocks.{}"
_EXPERT = "model.layers.{}.mlp.experts.{e}"
WEIGHT_MAP = WeightMap({
    **{k: v for k, v in QWEN3_WEIGHT_MAP.entries.items() if ".mlp." not in k},
    "model.layers.{}.mlp.gate.weight": f"{_B}.ff.gate.weight",
    f"{_EXPERT}.gate_proj.weight": f"{_B}.ff.experts.{{e}}.fc1.weight",
    f"{_EXPERT}.up_proj.weight": f"{_B}.ff.experts.{{e}}.fc2.weight",
    f"{_EXPERT}.down_proj.weight": f"{_B}.ff.experts.{{e}}.fc3.weight",
}, ignore=QWEN3_WEIGHT_MAP.ignore)


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    if c.get("mlp_only_layers") or c.get("decoder_sparse_step", 1) != 1:
        raise ValueError("Qwen3-MoE configs with dense layers (mlp_only_layers / decoder_sparse_step != 1) are "
                         "not supported; the released models use a MoE block in every layer")
    if c.get("use_sliding_window"):
        raise ValueError("Qwen3-MoE with use_sliding_window=true is not supported")
    return qwen3_from_hf_config(c).replace(
        family="qwen3_moe",
        moe=MoEConfig(n_experts=c.get("num_experts") or c["num_local_experts"],  # transformers 5 saves the alias
                      n_experts_per_tok=c["num_experts_per_tok"], hidden_dim=c["moe_intermediate_size"],
                      scoring="softmax", norm_topk_prob=bool(c.get("norm_topk_prob", False))),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    out = llama_like_to_hf(cfg, "qwen3_moe", "Qwen3MoeForCausalLM")
    m = cfg.moe
    out.update(num_experts=m.n_experts, num_experts_per_tok=m.n_experts_per_tok, moe_intermediate_size=m.hidden_dim,
               norm_topk_prob=m.norm_topk_prob, decoder_sparse_step=1, mlp_only_layers=[],
               use_sliding_window=False, sliding_window=None, router_aux_loss_coef=0.001)
    return out


FAMILY = Family(
    name="qwen3_moe", model_types=("qwen3_moe",), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, prepare_checkpoint=check_expert_count, configs=CONFIGS,
)
