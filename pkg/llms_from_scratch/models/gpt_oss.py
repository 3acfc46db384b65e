"""gpt-oss (OpenAI, 2025): 20B and 120B open-weight mixture-of-experts models.

A pre-norm decoder whose departures from Llama are each a config switch on the shared blocks:

* **attention sinks**: every head has a learned logit that joins its softmax denominator but carries no value,
  so a head may attend to "nothing" (``attn_sinks``);
* **alternating windows**: even layers attend to the last 128 tokens only, odd layers to everything;
* **YaRN RoPE** (base 150k, factor 32 over a 4096-token pre-training length) with the ramp's ends left
  fractional (``RopeScaling(truncate=False)``);
* biases on the q/k/v and output projections, grouped-query attention (64 query heads, 8 key/value heads of 64);
* a **mixture of experts** in every layer (32 or 128 experts, top 4) whose router has a bias and whose weights are
  a softmax over the four chosen logits; each expert is a **clamped SwiGLU** with biases: the gate capped at 7,
  the linear part clipped to [-7, 7] and shifted by one, the gate's SiLU sharpened (``g * sigmoid(1.702 g)``).

The checkpoints store the experts of a layer fused into 3-d tensors, gate and up projections interleaved column
by column, and in the official files as **MXFP4** (see :mod:`.mxfp4`); :func:`split_experts` dequantizes and
splits them into one :class:`~llms_from_scratch.nn.ffn.SwiGLU` per expert at load, and :func:`fuse_experts`
writes them back fused, unquantized (in the model's dtype), on export.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import torch

from ..nn.moe import MoEConfig
from ..nn.rope import RopeScaling
from .checkpoint_hooks import GetTensor
from .config import ModelConfig
from .family import Family
from .hf_config import rope_from_hf, rope_to_hf, token_ids_from_hf
from .mxfp4 import dequantize_mxfp4
from .weights import WeightMap

_TOKENS = (("eos_token_id", 200002), ("pad_token_id", 199999))
_YARN = RopeScaling("yarn", factor=32.0, original_context_length=4096, beta_fast=32.0, beta_slow=1.0, truncate=False)


def gpt_oss_layer_types(n_layers: int) -> tuple[str, ...]:
    """Sliding-window and full-attention layers in turn, starting with a sliding one."""
    return tuple("sliding" if i % 2 == 0 else "full" for i in range(n_layers))


def gpt_oss_config(n_layers: int, n_experts: int) -> ModelConfig:
    return ModelConfig(
        family="gpt_oss", vocab_size=201_088, context_length=131_072, emb_dim=2880, n_layers=n_layers, n_heads=64,
        n_kv_groups=8, head_dim=64, hidden_dim=2880, norm="rmsnorm", norm_eps=1e-5, rope_base=150_000.0,
        rope_scaling=_YARN, qkv_bias=True, out_bias=True, sliding_window=128,
        layer_types=gpt_oss_layer_types(n_layers), attn_sinks=True, tie_embeddings=False,
        moe=MoEConfig(n_experts=n_experts, n_experts_per_tok=4, hidden_dim=2880, scoring="topk_softmax",
                      norm_topk_prob=False, router_bias=True, expert_bias=True, swiglu_limit=7.0, swiglu_alpha=1.702),
        extra=_TOKENS,
    )


CONFIGS = {"gpt-oss-20b": gpt_oss_config(24, 32), "gpt-oss-120b": gpt_oss_config(36, 128)}

_B = "trf_blocks.{}"
_EXPERT = "model.layers.{}.mlp.experts.{e}"
WEIGHT_MAP = WeightMap({
    "model.embed_tokens.weight": "tok_emb.weight",
    "model.layers.{}.input_layernorm.weight": f"{_B}.norm1.scale",
    **{f"model.layers.{{}}.self_attn.{hf}_proj.{p}": f"{_B}.att.{ours}.{p}"
       for hf, ours in (("q", "W_query"), ("k", "W_key"), ("v", "W_value"), ("o", "out_proj"))
       for p in ("weight", "bias")},
    "model.layers.{}.self_attn.sinks": f"{_B}.att.sinks",
    "model.layers.{}.post_attention_layernorm.weight": f"{_B}.norm2.scale",
    "model.layers.{}.mlp.router.weight": f"{_B}.ff.gate.weight",
    "model.layers.{}.mlp.router.bias": f"{_B}.ff.gate.bias",
    # per-expert names that split_experts offers in place of the checkpoint's fused tensors
    **{f"{_EXPERT}.{hf}_proj.{p}": f"{_B}.ff.experts.{{e}}.{ours}.{p}"
       for hf, ours in (("gate", "fc1"), ("up", "fc2"), ("down", "fc3")) for p in ("weight", "bias")},
    "model.norm.weight": "final_norm.scale",
    "lm_head.weight": "out_head.weight",
})

# a layer's fused expert tensors: unquantized (gate_up_proj, its bias ...) or MXFP4 (gate_up_proj_blocks + _scales)
_FUSED = re.compile(r"(model\.layers\.\d+\.mlp\.experts\.)(gate_up_proj|down_proj)(_bias|_blocks|_scales)?")


def split_experts(names: list[str], get_tensor: GetTensor, cfg: ModelConfig) -> tuple[list[str], GetTensor]:
    """Checkpoint hook: offer each layer's fused expert tensors as one tensor per expert and projection.

    ``gate_up_proj`` (experts, emb_dim, 2 * hidden) holds the gate in its even columns and the up projection in
    its odd ones; ``down_proj`` is (experts, hidden, emb_dim), both stored input-major (transposed against
    ``nn.Linear``). The MXFP4 form stores the same matrices output-major as ``_blocks`` + ``_scales``
    ((experts, out, in / 32, 16) and (experts, out, in / 32)), dequantized here (exactly, in bfloat16) and cast
    to the dtype the reader gives the projection's bias.
    """
    n_experts = cfg.moe.n_experts
    sources: dict[str, tuple[str, str, int, str]] = {}  # offered name -> (layer prefix, fused name, expert, part)
    out_names: list[str] = []
    for name in names:
        m = _FUSED.fullmatch(name)
        if m is None:
            out_names.append(name)
            continue
        if m[3] == "_scales":
            if name[: -len("_scales")] + "_blocks" not in names:
                raise ValueError(f"{name} has no {m[1]}{m[2]}_blocks beside it; the checkpoint is incomplete")
            continue  # read together with its blocks
        kind = "bias" if m[3] == "_bias" else "weight"
        parts = ("gate", "up") if m[2] == "gate_up_proj" else ("down",)
        for e in range(n_experts):
            for part in parts:
                offered = f"{m[1]}{e}.{part}_proj.{kind}"
                sources[offered] = (m[1], name, e, part)
                out_names.append(offered)
    # the fused tensors of the layer read last, as stored (MXFP4 stays packed, a quarter of bfloat16's size): every
    # expert asks for them, and an expert's gate and up projections come from the same dequantized matrix
    cache: dict[str, torch.Tensor] = {}
    last: dict[tuple[str, int], torch.Tensor] = {}

    def stored(prefix: str, name: str) -> torch.Tensor:
        if name not in cache:
            if any(not k.startswith(prefix) for k in cache):
                cache.clear()  # a new layer: drop the previous one's tensors
            cache[name] = get_tensor(name)
        return cache[name]

    def expert(prefix: str, name: str, e: int) -> torch.Tensor:
        """Expert ``e``'s slice of a fused tensor: a weight (out, in) or a bias (out,)."""
        if (name, e) not in last:
            last.clear()
            if name.endswith("_blocks"):
                proj = name[: -len("_blocks")]
                # exact in bfloat16, then cast to the dtype the reader gives the projection's bias
                dtype = get_tensor(proj + "_bias").dtype
                t = dequantize_mxfp4(stored(prefix, name)[e], stored(prefix, proj + "_scales")[e]).to(dtype)
            else:
                t = stored(prefix, name)[e]
                if name.endswith("_proj"):
                    t = t.t()  # stored (in, out), as nn.Linear's (out, in) in the MXFP4 form
            last[(name, e)] = t
        return last[(name, e)]

    def get(name: str) -> torch.Tensor:
        if name not in sources:
            return get_tensor(name)
        prefix, fused_name, e, part = sources[name]
        t = expert(prefix, fused_name, e)
        if part != "down":
            t = t[0::2] if part == "gate" else t[1::2]  # gate and up rows alternate
        return t.clone(memory_format=torch.contiguous_format)

    if any(n.endswith("_blocks") for n in names) and not all(
            n[: -len("_blocks")] + "_scales" in names for n in names if n.endswith("_blocks")):
        raise ValueError("an MXFP4 checkpoint needs a _scales tensor beside every _blocks tensor; it is incomplete")
    return out_names, get


def fuse_experts(tensors: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Export hook, the inverse of :func:`split_experts`: one fused, unquantized tensor per layer and kind."""
    out = {k: v for k, v in tensors.items() if ".mlp.experts." not in k}
    n = cfg.moe.n_experts

    def stack(p: str, part: str, kind: str) -> torch.Tensor:  # the experts' tensors of one kind, (E, ...)
        return torch.stack([tensors[f"{p}{e}.{part}_proj.{kind}"] for e in range(n)])

    for layer in range(cfg.n_layers):
        p = f"model.layers.{layer}.mlp.experts."
        gate_up = torch.stack((stack(p, "gate", "weight"), stack(p, "up", "weight")), dim=2)  # (E, hidden, 2, emb)
        out[p + "gate_up_proj"] = gate_up.flatten(1, 2).transpose(1, 2).contiguous()  # (E, emb, 2 * hidden)
        out[p + "gate_up_proj_bias"] = torch.stack((stack(p, "gate", "bias"), stack(p, "up", "bias")), dim=2).flatten(1)
        out[p + "down_proj"] = stack(p, "down", "weight").transpose(1, 2).contiguous()  # (E, hidden, emb)
        out[p + "down_proj_bias"] = stack(p, "down", "bias")
    return out


_LAYER_TYPES = {"sliding_attention": "sliding", "full_attention": "full"}


def from_hf_config(c: dict[str, Any]) -> ModelConfig:
    quant = (c.get("quantization_config") or {}).get("quant_method")
    if quant not in (None, "mxfp4"):
        raise ValueError(f"gpt-oss checkpoints quantized with {quant!r} are not supported (MXFP4 or unquantized)")
    base, scaling = rope_from_hf(c)
    if scaling is not None:
        spec = {**(c.get("rope_scaling") or {}), **(c.get("rope_parameters") or {})}
        scaling = dataclasses.replace(scaling, truncate=bool(spec.get("truncate", True)))
    n_layers = c["num_hidden_layers"]
    kinds = c.get("layer_types") or [
        "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layers)]
    if set(kinds) - set(_LAYER_TYPES):
        raise ValueError(f"layer_types may only hold {sorted(_LAYER_TYPES)}, got {sorted(set(kinds))}")
    bias = bool(c.get("attention_bias", True))
    return ModelConfig(
        family="gpt_oss", vocab_size=c["vocab_size"], context_length=c["max_position_embeddings"],
        emb_dim=c["hidden_size"], n_layers=n_layers, n_heads=c["num_attention_heads"],
        n_kv_groups=c["num_key_value_heads"], head_dim=c.get("head_dim") or 64, hidden_dim=c["intermediate_size"],
        norm="rmsnorm", norm_eps=c.get("rms_norm_eps", 1e-5), rope_base=base, rope_scaling=scaling,
        qkv_bias=bias, out_bias=bias, sliding_window=c.get("sliding_window", 128),
        layer_types=tuple(_LAYER_TYPES[k] for k in kinds), attn_sinks=True,
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        moe=MoEConfig(n_experts=c.get("num_local_experts") or c["num_experts"],
                      n_experts_per_tok=c.get("num_experts_per_tok") or c["experts_per_token"],
                      hidden_dim=c["intermediate_size"], scoring="topk_softmax", norm_topk_prob=False,
                      router_bias=True, expert_bias=True, swiglu_limit=float(c.get("swiglu_limit", 7.0)),
                      swiglu_alpha=float(c.get("swiglu_alpha", 1.702))),
        extra=token_ids_from_hf(c),
    )


def to_hf_config(cfg: ModelConfig) -> dict[str, Any]:
    m = cfg.moe
    if m is None or cfg.layer_types is None or not cfg.attn_sinks or cfg.qkv_bias != cfg.out_bias:
        raise ValueError("a gpt-oss config needs experts, layer_types, attention sinks and one attention_bias setting")
    rope = rope_to_hf(cfg)
    if cfg.rope_scaling is not None:
        rope["rope_parameters"]["truncate"] = cfg.rope_scaling.truncate
        rope["rope_scaling"]["truncate"] = cfg.rope_scaling.truncate
    out = {
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.context_length, "hidden_size": cfg.emb_dim,
        "intermediate_size": m.hidden_dim, "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.resolved_kv_groups,
        "head_dim": cfg.resolved_head_dim, "rms_norm_eps": cfg.norm_eps, "attention_bias": cfg.qkv_bias,
        "attention_dropout": cfg.drop_rate, "sliding_window": cfg.sliding_window,
        "layer_types": [f"{t}_attention" for t in cfg.layer_types], "num_local_experts": m.n_experts,
        "num_experts_per_tok": m.n_experts_per_tok, "swiglu_limit": m.swiglu_limit, "swiglu_alpha": m.swiglu_alpha,
        "router_aux_loss_coef": 0.001, "hidden_act": "silu", "tie_word_embeddings": cfg.tie_embeddings, **rope,
    }
    out.update({k: list(v) if isinstance(v, tuple) else v for k, v in cfg.extra})
    return out


FAMILY = Family(
    name="gpt_oss", model_types=("gpt_oss",), weight_map=WEIGHT_MAP, from_hf_config=from_hf_config,
    to_hf_config=to_hf_config, prepare_checkpoint=split_experts, finish_export=fuse_experts, configs=CONFIGS,
)
