"""Model configurations in the book's vocabulary.

A :class:`ModelConfig` describes an architecture only (no dtype, no device, no weights). Each family file
(``gpt2.py``, ``llama.py``, ``qwen3.py``, ``bert.py``, ``mistral.py``, ``qwen1.py``, ``qwen3_moe.py``,
``deepseek.py``, ``gemma3.py``, ``olmo3.py``, ``smollm3.py``, ``qwen3_next.py``, ``gpt_oss.py``, ``qwen3_5.py``) lists its official sizes under exact names such as
``"qwen3-0.6b"``; :mod:`.families` gathers them, and :func:`~.families.get_config` looks a name up and
suggests close matches for a typo. This module imports no family.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..nn.mla import MLAConfig
from ..nn.moe import MoEConfig
from ..nn.rope import RopeScaling

NORMS = ("layernorm", "rmsnorm")
FFNS = ("gelu_tanh", "gelu", "swiglu", "geglu")
# where each block normalizes: "pre" x + f(norm(x)); "sandwich" x + norm_post(f(norm_pre(x))) (Gemma 2/3);
# "post" x + norm(f(x)) (OLMo 2/3)
NORM_PLACEMENTS = ("pre", "sandwich", "post")
LAYER_TYPES = ("full", "sliding", "linear")


@dataclass(frozen=True)
class LinearAttentionConfig:
    """The gated DeltaNet layers of a hybrid model (``layer_types`` entries "linear"; see ``nn/deltanet.py``)."""

    n_heads: int  # value heads, each with its own recurrent state
    n_qk_heads: int  # query/key heads, each shared by n_heads // n_qk_heads value heads
    qk_head_dim: int
    v_head_dim: int
    conv_kernel: int = 4

    def __post_init__(self) -> None:
        values = (self.n_heads, self.n_qk_heads, self.qk_head_dim, self.v_head_dim, self.conv_kernel)
        if any(not isinstance(v, int) or v <= 0 for v in values):
            raise ValueError(f"linear attention sizes must be positive integers, got {self}")
        if self.n_heads % self.n_qk_heads:
            raise ValueError(f"linear attention n_heads ({self.n_heads}) must be a multiple of n_qk_heads "
                             f"({self.n_qk_heads})")


@dataclass(frozen=True, eq=False)
class ModelConfig:
    """One architecture. Field names follow the book (``emb_dim``, ``n_heads``, ``context_length`` ...)."""

    family: str  # the name of a family in models/families.py, e.g. "llama"
    vocab_size: int
    context_length: int
    emb_dim: int
    n_layers: int
    n_heads: int
    hidden_dim: int
    n_kv_groups: int | None = None  # number of key/value heads; None = n_heads (multi-head attention)
    head_dim: int | None = None  # None = emb_dim // n_heads
    norm: str = "rmsnorm"
    norm_eps: float = 1e-5
    norm_unit_offset: bool = False  # RMSNorm multiplies by (1 + weight): Gemma's stored form
    norm_placement: str = "pre"  # one of NORM_PLACEMENTS
    ffn: str = "swiglu"  # "geglu": SwiGLU's gate with tanh-GELU (Gemma)
    scale_embeddings: bool = False  # multiply token embeddings by sqrt(emb_dim) (Gemma)
    learned_pos_emb: bool = False  # GPT-2/BERT: a learned table; otherwise RoPE
    rope_base: float = 10_000.0
    rope_scaling: RopeScaling | None = None
    partial_rotary_factor: float = 1.0  # RoPE rotates this share of each head's features (Qwen3-Next: 0.25)
    # sliding-window layers with their own, unscaled RoPE of this base (Gemma 3: 10k locally, 1M globally; OLMo 3:
    # the same base, with YaRN on the full layers only); None = every layer uses rope_base and rope_scaling
    sliding_rope_base: float | None = None
    nope_layers: tuple[int, ...] = ()  # layers that apply no RoPE at all (SmolLM3: every fourth)
    qkv_bias: bool = False
    out_bias: bool = False  # bias of the attention output projection
    ffn_bias: bool = False
    qk_norm: bool = False
    qk_norm_scope: str = "head"  # "head": per head (Qwen3, Gemma 3); "projection": whole q/k projection (OLMo)
    query_pre_attn_scalar: float | None = None  # scores scaled by this ** -0.5 instead of head_dim ** -0.5 (Gemma)
    sliding_window: int | None = None
    # per layer "full", "sliding" or "linear" (gated DeltaNet, configured by linear_attn); None = all full
    layer_types: tuple[str, ...] | None = None
    linear_attn: LinearAttentionConfig | None = None
    attn_output_gate: bool = False  # attention output times sigmoid(a gate the query projection emits) (Qwen3-Next)
    attn_sinks: bool = False  # a learned logit per head joins each softmax's denominator (gpt-oss)
    tie_embeddings: bool = False
    type_vocab_size: int = 0  # BERT's segment embeddings
    drop_rate: float = 0.0
    moe: MoEConfig | None = None  # mixture-of-experts feed-forward (Qwen3-MoE, DeepSeek); None = dense
    mla: MLAConfig | None = None  # multi-head latent attention (DeepSeek) instead of grouped-query attention
    # refuse positions >= context_length: the checkpoint would change RoPE/attention there (Qwen1's dynamic
    # NTK and logN scaling), which this package does not implement
    strict_context: bool = False
    extra: tuple[tuple[str, Any], ...] = field(default=(), compare=False)  # facts for export, e.g. token ids

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.family, str) or not self.family:
            problems.append(f"family must be a family's name, got {self.family!r}")
        if self.norm not in NORMS:
            problems.append(f"norm {self.norm!r} is not one of {NORMS}")
        if self.ffn not in FFNS:
            problems.append(f"ffn {self.ffn!r} is not one of {FFNS}")
        if self.norm_placement not in NORM_PLACEMENTS:
            problems.append(f"norm_placement {self.norm_placement!r} is not one of {NORM_PLACEMENTS}")
        if self.norm_unit_offset and self.norm != "rmsnorm":
            problems.append("norm_unit_offset applies to RMSNorm only; set norm='rmsnorm'")
        if self.qk_norm_scope not in ("head", "projection"):
            problems.append(f"qk_norm_scope must be 'head' or 'projection', got {self.qk_norm_scope!r}")
        if self.query_pre_attn_scalar is not None and self.query_pre_attn_scalar <= 0:
            problems.append(f"query_pre_attn_scalar must be positive, got {self.query_pre_attn_scalar}")
        if self.learned_pos_emb and (self.sliding_rope_base is not None or self.nope_layers):
            problems.append("sliding_rope_base and nope_layers need RoPE; this config uses learned positions")
        if self.sliding_rope_base is not None and self.sliding_window is None:
            problems.append("sliding_rope_base is set but no layer slides; set sliding_window (and layer_types)")
        if isinstance(self.n_layers, int) and any(not 0 <= i < self.n_layers for i in self.nope_layers):
            problems.append(f"nope_layers {self.nope_layers} must be layer indices in [0, {self.n_layers}); "
                            "when changing n_layers, pass nope_layers too")
        for name in ("vocab_size", "context_length", "emb_dim", "n_layers", "n_heads", "hidden_dim"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.n_kv_groups is not None and isinstance(self.n_heads, int) and self.n_heads > 0:
            if self.n_kv_groups <= 0 or self.n_heads % self.n_kv_groups:
                problems.append(
                    f"n_heads ({self.n_heads}) must be a multiple of n_kv_groups ({self.n_kv_groups}): "
                    "each key/value head serves the same number of query heads"
                )
        if self.head_dim is None and isinstance(self.n_heads, int) and self.n_heads > 0:
            if self.emb_dim % self.n_heads:
                problems.append(
                    f"emb_dim ({self.emb_dim}) is not divisible by n_heads ({self.n_heads}); set head_dim explicitly"
                )
        if not self.learned_pos_emb and self.rope_dim % 2:
            problems.append(f"RoPE needs an even head_dim, got {self.rope_dim}")
        if self.layer_types is not None:
            if len(self.layer_types) != self.n_layers:
                problems.append(f"layer_types has {len(self.layer_types)} entries for {self.n_layers} layers")
            if set(self.layer_types) - set(LAYER_TYPES):
                problems.append(f"layer_types may only contain {LAYER_TYPES}, got {set(self.layer_types)}")
            if "linear" in self.layer_types and self.linear_attn is None:
                problems.append("layer_types has linear layers but linear_attn is not set")
            if "linear" in self.layer_types and ("sliding" in self.layer_types or self.mla is not None):
                problems.append("linear layers mix only with full grouped-query attention layers, not with sliding "
                                "windows or latent attention")
            if "sliding" in self.layer_types and self.sliding_window is None:
                problems.append("layer_types has sliding layers but sliding_window is not set")
        if self.attn_sinks and self.mla is not None:
            problems.append("attn_sinks applies to grouped-query attention; latent attention (mla) has no sinks")
        if self.sliding_window is not None and self.sliding_window <= 0:
            problems.append(f"sliding_window must be positive, got {self.sliding_window}")
        if not 0.0 < self.partial_rotary_factor <= 1.0:
            problems.append(f"partial_rotary_factor must be in (0, 1], got {self.partial_rotary_factor}")
        if not 0.0 <= self.drop_rate < 1.0:
            problems.append(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        if self.norm_eps <= 0:
            problems.append(f"norm_eps must be positive, got {self.norm_eps}")
        if problems:
            raise ValueError("invalid model config:\n  - " + "\n  - ".join(problems))

    def _identity(self) -> tuple:
        # head_dim=None and head_dim=emb_dim//n_heads describe the same model (likewise n_kv_groups), so
        # equality compares resolved values; ``extra`` holds facts about a checkpoint, not the architecture
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        values.update(head_dim=self.resolved_head_dim, n_kv_groups=self.resolved_kv_groups)
        return tuple(values.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelConfig):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim if self.head_dim is not None else self.emb_dim // self.n_heads

    @property
    def resolved_kv_groups(self) -> int:
        return self.n_kv_groups if self.n_kv_groups is not None else self.n_heads

    @property
    def rope_dim(self) -> int:
        """Features per head that RoPE rotates (latent attention rotates only its decoupled part)."""
        if self.mla is not None:
            return self.mla.qk_rope_head_dim
        return int(self.resolved_head_dim * self.partial_rotary_factor)

    def is_linear(self, layer: int) -> bool:
        """Whether ``layer`` is a linear-attention (gated DeltaNet) layer rather than softmax attention."""
        return self.layer_types is not None and self.layer_types[layer] == "linear"

    def layer_window(self, layer: int) -> int | None:
        """The sliding window of ``layer``, or None for full attention."""
        if self.sliding_window is None:
            return None
        if self.layer_types is None or self.layer_types[layer] == "sliding":
            return self.sliding_window
        return None

    def layer_rope(self, layer: int) -> str | None:
        """Which RoPE ``layer`` applies: "global" (rope_base, rope_scaling), "sliding" (sliding_rope_base,
        unscaled) or None (no position information: a NoPE layer, or learned positions)."""
        if self.learned_pos_emb or layer in self.nope_layers:
            return None
        if self.sliding_rope_base is not None and self.layer_window(layer) is not None:
            return "sliding"
        return "global"

    def info(self, key: str, default: Any = None) -> Any:
        return dict(self.extra).get(key, default)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def __getitem__(self, key: str) -> Any:
        # lets notebook code written for the book's dict configs keep writing cfg["emb_dim"]
        if key not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(f"ModelConfig has no field {key!r}")
        return getattr(self, key)
