"""Qwen3.5 (Alibaba, 2026): Qwen3-Next's hybrid layers, at every size, dense or with experts.

The text model is Qwen3-Next's (``qwen3_next.py``): three **gated DeltaNet** layers, then one **gated full
attention** layer (QK-norm, partial RoPE over the first quarter of each 256-wide head, ``out_proj(attn *
sigmoid(gate))``), all norms storing ``w`` for a scale of ``1 + w``. What differs:

* the small and mid sizes (0.8B, 9B, 27B) have a dense SwiGLU feed-forward; 35B-A3B, 122B-A10B and 397B-A17B a
  mixture of experts with a sigmoid-gated shared expert, as Qwen3-Next;
* the checkpoints store the DeltaNet projections unfused (``in_proj_qkv``, ``in_proj_z``, ``in_proj_b``,
  ``in_proj_a``), already in the layout the shared block uses, so no regrouping hook is needed;
* the released checkpoints are vision-language models: the text model's tensors sit under
  ``model.language_model.`` beside a vision tower (``model.visual.``) and a multi-token-prediction layer
  (``mtp.``), and ``config.json`` nests the text settings under ``text_config``. This family reads that layout
  (the vision tower and MTP layer are left out) as well as the flat one ``Qwen3_5ForCausalLM.save_pretrained``
  writes;
* the rotary embedding is "multimodal" (M-RoPE: sections of the rotated features follow time, height and width
  positions); for text all three positions are the token index, which makes it the plain partial RoPE used here.

Sizes: the numbers of each config below are those of the model's ``config.json`` as quoted in public code (the
source is named beside each); 2B and 4B are not registered because their full configs were not available.
"""

from __future__ import annotations

import re
from typing import Any

from ..nn.moe import MoEConfig
from .checkpoint_hooks import GetTensor, check_expert_count
from .config import LinearAttentionConfig, ModelConfig
from .family import Family
from .qwen3 import WEIGHT_MAP as QWEN3_WEIGHT_MAP
from .qwen3_next import WEIGHT_MAP as QWEN3_NEXT_WEIGHT_MAP
from .qwen3_next import from_hf_config as qwen3_next_from_hf_config
from .qwen3_next import qwen3_next_layer_types
from .qwen3_next import to_hf_config as qwen3_next_to_hf_config
from .weights import WeightMap

_VOCAB = 248320  # every size shares the tokenizer (248,044 entries used, padded)
_EOS = 248044  # text_config's eos_token_id (<|endoftext|>); chat turns end with <|im_end|>, 248046


def qwen3_5_config(*, emb_dim: int, n_layers: int, n_heads: int, n_kv_groups: int, hidden_dim: int,
                   linear_v_heads: int, moe: MoEConfig | None = None, tie: bool = False) -> ModelConfig:
    """A Qwen3.5 text model: what every size shares (head width 256, RoPE base 1e7 over a quarter of each head,
    262,144 positions, DeltaNet heads of width 128 with 16 query/key heads) plus its own widths."""
    return ModelConfig(
        family="qwen3_5", vocab_size=_VOCAB, context_length=262144, emb_dim=emb_dim, n_layers=n_layers,
        n_heads=n_heads, n_kv_groups=n_kv_groups, head_dim=256, hidden_dim=hidden_dim, norm="rmsnorm", norm_eps=1e-6,
        norm_unit_offset=True, ffn="swiglu", rope_base=10_000_000.0, partial_rotary_factor=0.25, qk_norm=True,
        attn_output_gate=True, layer_types=qwen3_next_layer_types(n_layers),
        linear_attn=LinearAttentionConfig(n_heads=linear_v_heads, n_qk_heads=16, qk_head_dim=128, v_head_dim=128),
        moe=moe, tie_embeddings=tie, extra=(("eos_token_id", _EOS),),
    )


def _experts(n: int, top: int, width: int) -> MoEConfig:
    # one shared expert as wide as a routed one, its output scaled by a per-token sigmoid gate
    return MoEConfig(n_experts=n, n_experts_per_tok=top, hidden_dim=width, norm_topk_prob=True, n_shared_experts=1,
                     shared_expert_gate=True)


CONFIGS = {
    # config.json quoted in test fixtures of several inference engines; layers, widths and tied embeddings
    # also in THUDM/slime scripts/models/qwen3.5-0.8B.sh
    "qwen3.5-0.8b": qwen3_5_config(emb_dim=1024, n_layers=24, n_heads=8, n_kv_groups=2, hidden_dim=3584,
                                   linear_v_heads=16, tie=True),
    # the defaults of transformers' Qwen3_5TextConfig, documented there as "Qwen3.5-9B style"
    "qwen3.5-9b": qwen3_5_config(emb_dim=4096, n_layers=32, n_heads=16, n_kv_groups=4, hidden_dim=12288,
                                 linear_v_heads=32),
    # THUDM/slime scripts/models/qwen3.5-27B.sh and config.json quoted in test fixtures (48 DeltaNet value heads)
    "qwen3.5-27b": qwen3_5_config(emb_dim=5120, n_layers=64, n_heads=24, n_kv_groups=4, hidden_dim=17408,
                                  linear_v_heads=48),
    # transformers' Qwen3_5MoeTextConfig defaults ("Qwen3.5-35B-A3B style") and slime's qwen3.5-35B-A3B.sh agree;
    # hidden_dim is the dense width transformers keeps unused in MoE layers
    "qwen3.5-35b-a3b": qwen3_5_config(emb_dim=2048, n_layers=40, n_heads=16, n_kv_groups=2, hidden_dim=512,
                                      linear_v_heads=32, moe=_experts(256, 8, 512)),
    # config.json values quoted in two public test scripts (48 layers, 256 experts of width 1024, top-8)
    "qwen3.5-122b-a10b": qwen3_5_config(emb_dim=3072, n_layers=48, n_heads=32, n_kv_groups=2, hidden_dim=1024,
                                        linear_v_heads=64, moe=_experts(256, 8, 1024)),
    # slime's qwen3.5-397B-A17B.sh and config.json values quoted in public code (512 experts, top-10)
    "qwen3.5-397b-a17b": qwen3_5_config(emb_dim=4096, n_layers=60, n_heads=32, n_kv_groups=2, hidden_dim=1024,
                                        linear_v_heads=64, moe=_experts(512, 10, 1024)),
}

_DENSE_MLP = {k: v for k, v in QWEN3_WEIGHT_MAP.entries.items() if ".mlp." in k}
# Qwen3-Next's map already names the unfused DeltaNet projections; the dense sizes add Qwen3's SwiGLU names
WEIGHT_MAP = WeightMap(
    {**QWEN3_NEXT_WEIGHT_MAP.entries, **_DENSE_MLP},
    ignore=(*(p.pattern for p in QWEN3_NEXT_WEIGHT_MAP.ignore), r"model\.visual\..*"),
)

_LANGUAGE_MODEL = "model.language_model."
_LAYER_KIND = re.compile(r"model\.layers\.(\d+)\.(self_attn|linear_attn)\.")


def read_language_model(names: list[str], get_tensor: GetTensor, cfg: ModelConfig) -> tuple[list[str], GetTensor]:
    """Load hook: offer ``model.language_model.X`` (the released vision-language checkpoints) as ``model.X``."""
    if cfg.moe is not None:
        names, get_tensor = check_expert_count(names, get_tensor, cfg)
    renamed = {("model." + n[len(_LANGUAGE_MODEL):] if n.startswith(_LANGUAGE_MODEL) else n): n for n in names}

    def get(name: str):
        return get_tensor(renamed[name])

    return list(renamed), get


def keep_each_layers_own_names(tensors: dict[str, Any], cfg: ModelConfig) -> dict[str, Any]:
    """Export hook: ``out_proj`` is mapped from both kinds of layer; each layer keeps its own kind's name."""
    out = {}
    for name, t in tensors.items():
        m = _LAYER_KIND.match(name)
        if m is not None and (m[2] == "linear_attn") != cfg.is_linear(int(m[1])):
            continue
        out[name] = t
    return out


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    text = c.get("text_config") or c  # the released checkpoints nest the text model's settings
    is_moe = bool(text.get("num_experts"))
    flat = dict(text)
    if is_moe:
        # the MoE configs may omit the dense width, which no layer uses; keep the expert width in its place
        flat["intermediate_size"] = text.get("intermediate_size") or text["moe_intermediate_size"]
        flat["norm_topk_prob"] = True  # Qwen3.5-MoE always renormalizes the chosen experts' weights
    else:
        # Qwen3-Next's reader expects experts; a dense Qwen3.5 gets a placeholder that is dropped below
        flat.update(num_experts=1, num_experts_per_tok=1, moe_intermediate_size=1, shared_expert_intermediate_size=1)
    cfg = qwen3_next_from_hf_config(flat)  # a missing partial_rotary_factor defaults to 0.25 there, as here
    if "tie_word_embeddings" not in text and "tie_word_embeddings" in c:
        cfg = cfg.replace(tie_embeddings=bool(c["tie_word_embeddings"]))  # stated only at the top level
    return cfg.replace(family="qwen3_5", moe=cfg.moe if is_moe else None)


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    """A flat text ``config.json`` that ``transformers`` reads as ``Qwen3_5ForCausalLM`` (or its MoE twin)."""
    moe = cfg.moe
    out = qwen3_next_to_hf_config(cfg.replace(family="qwen3_next", moe=moe or _experts(1, 1, 1)))
    if moe is None:
        for key in ("num_experts", "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size",
                    "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers", "router_aux_loss_coef"):
            out.pop(key)
        out.update(model_type="qwen3_5_text", architectures=["Qwen3_5ForCausalLM"])
    else:
        for key in ("norm_topk_prob", "decoder_sparse_step", "mlp_only_layers"):
            out.pop(key)  # fixed in Qwen3.5-MoE (renormalized top-k, experts in every layer)
        out.update(model_type="qwen3_5_moe_text", architectures=["Qwen3_5MoeForCausalLM"])
    return out


FAMILY = Family(
    name="qwen3_5", model_types=("qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text"),
    weight_map=WEIGHT_MAP, from_hf_config=from_hf_config, to_hf_config=to_hf_config,
    prepare_checkpoint=read_language_model, finish_export=keep_each_layers_own_names, configs=CONFIGS,
)
