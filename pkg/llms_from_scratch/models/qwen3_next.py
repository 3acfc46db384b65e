"""Qwen3-Next (Alibaba, 2025): a hybrid of linear and softmax attention with a very sparse mixture of experts.

Out of every four layers, three mix tokens with a **gated DeltaNet** (linear attention: a fixed-size memory per
head, updated by the delta rule, so its decoding state does not grow with the context) and one with **gated
full attention**: grouped-query attention whose query projection also emits a gate, ``out_proj(attn *
sigmoid(gate))``, with QK-norm and **partial RoPE** (only the first quarter of each 256-wide head is rotated).
Every layer's feed-forward is a mixture of 512 small experts (top-10, renormalized) plus one shared expert
whose output is scaled by a per-token sigmoid gate. All RMSNorms store ``w`` for a scale of ``1 + w``
("zero-centred" norms). So 80B parameters are stored and about 3B work per token.

The checkpoints fuse each DeltaNet layer's q/k/v/z projections (and its β/α projections) into one matrix
grouped per query/key head; :func:`split_fused_projections` regroups them into the separate projections the
shared block uses on load, :func:`fuse_projections` restores the checkpoint layout on export.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..nn.moe import MoEConfig
from .checkpoint_hooks import GetTensor, check_expert_count
from .config import LinearAttentionConfig, ModelConfig
from .family import Family
from .hf_config import llama_like_to_hf, rope_from_hf, token_ids_from_hf
from .qwen3 import WEIGHT_MAP as QWEN3_WEIGHT_MAP
from .weights import WeightMap

_INTERVAL = 4  # every fourth layer attends with full softmax attention


def qwen3_next_layer_types(n_layers: int, interval: int = _INTERVAL) -> tuple[str, ...]:
    """Three linear-attention layers, then one full-attention layer, repeated."""
    return tuple("full" if (i + 1) % interval == 0 else "linear" for i in range(n_layers))


def qwen3_next_config(eos_token_id: int) -> ModelConfig:
    return ModelConfig(
        family="qwen3_next", vocab_size=151936, context_length=262144, emb_dim=2048, n_layers=48, n_heads=16,
        n_kv_groups=2, head_dim=256, hidden_dim=5120, norm="rmsnorm", norm_eps=1e-6, norm_unit_offset=True,
        ffn="swiglu", rope_base=10_000_000.0, partial_rotary_factor=0.25, qk_norm=True, attn_output_gate=True,
        layer_types=qwen3_next_layer_types(48),
        linear_attn=LinearAttentionConfig(n_heads=32, n_qk_heads=16, qk_head_dim=128, v_head_dim=128, conv_kernel=4),
        moe=MoEConfig(n_experts=512, n_experts_per_tok=10, hidden_dim=512, norm_topk_prob=True, n_shared_experts=1,
                      shared_expert_gate=True),
        tie_embeddings=False, extra=(("bos_token_id", 151643), ("eos_token_id", eos_token_id)),
    )


CONFIGS = {
    "qwen3-next-80b-a3b-base": qwen3_next_config(151643),
    "qwen3-next-80b-a3b-instruct": qwen3_next_config(151645),
    "qwen3-next-80b-a3b-thinking": qwen3_next_config(151645),
}

_B = "trf_blocks.{}"
_L = "model.layers.{}.linear_attn"
_EXPERT = "model.layers.{}.mlp.experts.{e}"
_SHARED = "model.layers.{}.mlp.shared_expert"
# the in_proj_qkv/z/b/a names are what split_fused_projections makes of in_proj_qkvz and in_proj_ba (they are also
# the names Qwen3.5 checkpoints store unfused)
WEIGHT_MAP = WeightMap({
    **{k: v for k, v in QWEN3_WEIGHT_MAP.entries.items() if ".mlp." not in k},
    f"{_L}.in_proj_qkv.weight": f"{_B}.att.W_qkv.weight",
    f"{_L}.in_proj_z.weight": f"{_B}.att.W_z.weight",
    f"{_L}.in_proj_b.weight": f"{_B}.att.W_beta.weight",
    f"{_L}.in_proj_a.weight": f"{_B}.att.W_alpha.weight",
    f"{_L}.conv1d.weight": f"{_B}.att.conv.weight",
    f"{_L}.A_log": f"{_B}.att.A_log",
    f"{_L}.dt_bias": f"{_B}.att.dt_bias",
    f"{_L}.norm.weight": f"{_B}.att.out_norm.norm.scale",
    f"{_L}.out_proj.weight": f"{_B}.att.out_proj.weight",
    "model.layers.{}.mlp.gate.weight": f"{_B}.ff.gate.weight",
    f"{_EXPERT}.gate_proj.weight": f"{_B}.ff.experts.{{e}}.fc1.weight",
    f"{_EXPERT}.up_proj.weight": f"{_B}.ff.experts.{{e}}.fc2.weight",
    f"{_EXPERT}.down_proj.weight": f"{_B}.ff.experts.{{e}}.fc3.weight",
    f"{_SHARED}.gate_proj.weight": f"{_B}.ff.shared_experts.fc1.weight",
    f"{_SHARED}.up_proj.weight": f"{_B}.ff.shared_experts.fc2.weight",
    f"{_SHARED}.down_proj.weight": f"{_B}.ff.shared_experts.fc3.weight",
    "model.layers.{}.mlp.shared_expert_gate.weight": f"{_B}.ff.shared_expert_gate.weight",
}, ignore=(*(p.pattern for p in QWEN3_WEIGHT_MAP.ignore), r"mtp\..*"))  # mtp: the multi-token-prediction layer

_FUSED = re.compile(r"(.*\.linear_attn\.)in_proj_(qkvz|ba)\.weight")
_LAYER_KIND = re.compile(r"model\.layers\.(\d+)\.(self_attn|linear_attn)\.")


def _group_sizes(cfg: ModelConfig) -> tuple[int, int, int]:
    """Query/key heads, their width, and the value rows per query/key head (value heads per group * v_head_dim)."""
    la = cfg.linear_attn
    return la.n_qk_heads, la.qk_head_dim, la.n_heads // la.n_qk_heads * la.v_head_dim


def split_fused_projections(names: list[str], get_tensor: GetTensor, cfg: ModelConfig) -> tuple[list[str], GetTensor]:
    """Load hook: offer each fused ``in_proj_qkvz`` / ``in_proj_ba`` as the separate q|k|v, z, β and α matrices.

    The checkpoint groups rows per query/key head ``g``: ``[q_g, k_g, v_g, z_g]`` and ``[b_g, a_g]``; the model
    wants all query rows, then all key rows, then all value rows (one projection feeding the convolution), and z,
    β, α on their own.
    """
    names, get_tensor = check_expert_count(names, get_tensor, cfg)
    nk, dk, dv_group = _group_sizes(cfg)
    r = cfg.linear_attn.n_heads // nk
    sources: dict[str, tuple[str, str]] = {}  # offered name -> (fused checkpoint name, part)
    out_names = []
    for name in names:
        m = _FUSED.fullmatch(name)
        if m is None:
            out_names.append(name)
            continue
        parts = ("qkv", "z") if m[2] == "qkvz" else ("b", "a")
        for part in parts:
            sources[f"{m[1]}in_proj_{part}.weight"] = (name, part)
            out_names.append(f"{m[1]}in_proj_{part}.weight")
    last: dict[str, torch.Tensor] = {}  # the fused tensor read last: each is asked for twice in a row

    def get(name: str) -> torch.Tensor:
        if name not in sources:
            return get_tensor(name)
        fused_name, part = sources[name]
        if fused_name not in last:
            last.clear()
            last[fused_name] = get_tensor(fused_name)
        fused = last[fused_name]
        d_in = fused.shape[-1]
        if part in ("qkv", "z"):
            # (rows, d_in) -> (qk heads, rows per head group, d_in)
            q, k, v, z = fused.view(nk, 2 * dk + 2 * dv_group, d_in).split([dk, dk, dv_group, dv_group], dim=1)
            if part == "z":
                return z.reshape(-1, d_in)
            return torch.cat([q.reshape(-1, d_in), k.reshape(-1, d_in), v.reshape(-1, d_in)])
        b, a = fused.view(nk, 2 * r, d_in).split([r, r], dim=1)
        return (b if part == "b" else a).reshape(-1, d_in)

    return out_names, get


def fuse_projections(tensors: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Export hook, the inverse of :func:`split_fused_projections`: regroup per query/key head and fuse."""
    nk, dk, dv_group = _group_sizes(cfg)
    r = cfg.linear_attn.n_heads // nk
    out = {}
    for name, t in tensors.items():
        m = _LAYER_KIND.match(name)
        if m is not None and (m[2] == "linear_attn") != cfg.is_linear(int(m[1])):
            continue  # out_proj is mapped from both kinds of layer; each layer exports under its own kind's name
        if name.endswith((".in_proj_z.weight", ".in_proj_a.weight")):
            continue  # fused below, with their partner
        prefix = name.rsplit("in_proj_", 1)[0]
        d_in = t.shape[-1]
        if name.endswith(".linear_attn.in_proj_qkv.weight"):
            q, k, v = t.split([nk * dk, nk * dk, nk * dv_group])
            z = tensors[prefix + "in_proj_z.weight"]
            # each (qk heads * rows, d_in) -> (qk heads, rows, d_in), side by side per head group
            groups = [q.view(nk, dk, d_in), k.view(nk, dk, d_in), v.view(nk, dv_group, d_in), z.view(nk, dv_group, d_in)]
            out[prefix + "in_proj_qkvz.weight"] = torch.cat(groups, dim=1).reshape(-1, d_in)
        elif name.endswith(".linear_attn.in_proj_b.weight"):
            a = tensors[prefix + "in_proj_a.weight"]
            out[prefix + "in_proj_ba.weight"] = torch.cat([t.view(nk, r, d_in), a.view(nk, r, d_in)], dim=1).reshape(
                -1, d_in)
        else:
            out[name] = t
    return out


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    n_layers = c["num_hidden_layers"]
    if c.get("mlp_only_layers") or c.get("decoder_sparse_step", 1) != 1 or not c.get("num_experts"):
        raise ValueError("Qwen3-Next configs with dense layers (mlp_only_layers, decoder_sparse_step != 1 or no "
                         "experts) are not supported; the released models use a MoE block in every layer")
    base, scaling = rope_from_hf(c)
    params = c.get("rope_parameters") or {}
    partial = params.get("partial_rotary_factor", c.get("partial_rotary_factor", 0.25))
    kinds = c.get("layer_types") or [
        "full_attention" if (i + 1) % c.get("full_attention_interval", _INTERVAL) == 0 else "linear_attention"
        for i in range(n_layers)]
    names = {"full_attention": "full", "linear_attention": "linear"}
    if set(kinds) - set(names):
        raise ValueError(f"layer_types may only hold {sorted(names)}, got {sorted(set(kinds))}")
    moe_width, shared_width = c["moe_intermediate_size"], c["shared_expert_intermediate_size"]
    if shared_width % moe_width:
        raise ValueError(f"shared_expert_intermediate_size ({shared_width}) must be a multiple of "
                         f"moe_intermediate_size ({moe_width}) to be held as n_shared_experts fused experts")
    heads = c["num_attention_heads"]
    return ModelConfig(
        family="qwen3_next", vocab_size=c["vocab_size"], context_length=c["max_position_embeddings"],
        emb_dim=c["hidden_size"], n_layers=n_layers, n_heads=heads, n_kv_groups=c.get("num_key_value_heads") or heads,
        head_dim=c.get("head_dim") or 256, hidden_dim=c["intermediate_size"], norm="rmsnorm",
        norm_eps=c.get("rms_norm_eps", 1e-6), norm_unit_offset=True, ffn="swiglu", rope_base=base,
        rope_scaling=scaling, partial_rotary_factor=float(partial), qk_norm=True, attn_output_gate=True,
        qkv_bias=bool(c.get("attention_bias", False)), out_bias=bool(c.get("attention_bias", False)),
        layer_types=tuple(names[k] for k in kinds),
        linear_attn=LinearAttentionConfig(
            n_heads=c["linear_num_value_heads"], n_qk_heads=c["linear_num_key_heads"],
            qk_head_dim=c["linear_key_head_dim"], v_head_dim=c["linear_value_head_dim"],
            conv_kernel=c.get("linear_conv_kernel_dim", 4)),
        moe=MoEConfig(n_experts=c["num_experts"], n_experts_per_tok=c["num_experts_per_tok"], hidden_dim=moe_width,
                      norm_topk_prob=bool(c.get("norm_topk_prob", True)), n_shared_experts=shared_width // moe_width,
                      shared_expert_gate=True),
        tie_embeddings=bool(c.get("tie_word_embeddings", False)), extra=token_ids_from_hf(c),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    out = llama_like_to_hf(cfg, "qwen3_next", "Qwen3NextForCausalLM")
    out["rope_parameters"] = {**out["rope_parameters"], "partial_rotary_factor": cfg.partial_rotary_factor}
    out["partial_rotary_factor"] = cfg.partial_rotary_factor
    la, m = cfg.linear_attn, cfg.moe
    out.update(
        layer_types=["linear_attention" if t == "linear" else "full_attention" for t in cfg.layer_types],
        linear_num_value_heads=la.n_heads, linear_num_key_heads=la.n_qk_heads, linear_key_head_dim=la.qk_head_dim,
        linear_value_head_dim=la.v_head_dim, linear_conv_kernel_dim=la.conv_kernel,
        num_experts=m.n_experts, num_experts_per_tok=m.n_experts_per_tok, moe_intermediate_size=m.hidden_dim,
        shared_expert_intermediate_size=m.n_shared_experts * m.hidden_dim, norm_topk_prob=m.norm_topk_prob,
        decoder_sparse_step=1, mlp_only_layers=[], router_aux_loss_coef=0.001,
    )
    return out


FAMILY = Family(
    name="qwen3_next", model_types=("qwen3_next",), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, prepare_checkpoint=split_fused_projections, finish_export=fuse_projections,
    configs=CONFIGS,
)
