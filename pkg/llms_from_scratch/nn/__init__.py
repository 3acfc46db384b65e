"""Model-agnostic building blocks that every family in the zoo is assembled from.

Nothing in here knows a model's name: a family is a configuration that picks among these blocks (see
``llms_from_scratch.models``). Each file holds one mechanism.
"""

from .attention import GroupedQueryAttention, build_attention_mask
from .autotune import prepare_for_decoding, tune_decoding
from .decode_layout import DecodePlan, build_decoding_model
from .deltanet import GatedDeltaNet, gated_delta_rule_chunked, gated_delta_rule_recurrent
from .ffn import FeedForward, SwiGLU
from .head_loss import head_cross_entropy
from .kv_cache import KVCache, KVCacheBase
from .linear_state_cache import LinearAttentionCache
from .mla import MLAConfig, MultiHeadLatentAttention
from .moe import MoEConfig, MoEFeedForward, load_balancing_loss
from .norms import LayerNorm, RMSNorm
from .ring_kv_cache import RingKVCache
from .rope import RopeScaling, RotaryEmbedding, apply_rope, rope_inv_freq

__all__ = [
    "DecodePlan",
    "FeedForward",
    "GatedDeltaNet",
    "GroupedQueryAttention",
    "KVCache",
    "KVCacheBase",
    "LayerNorm",
    "LinearAttentionCache",
    "MLAConfig",
    "MoEConfig",
    "MoEFeedForward",
    "MultiHeadLatentAttention",
    "RMSNorm",
    "RingKVCache",
    "RopeScaling",
    "RotaryEmbedding",
    "SwiGLU",
    "apply_rope",
    "build_attention_mask",
    "build_decoding_model",
    "gated_delta_rule_chunked",
    "gated_delta_rule_recurrent",
    "head_cross_entropy",
    "load_balancing_loss",
    "prepare_for_decoding",
    "rope_inv_freq",
    "tune_decoding",
]
