"""How much memory a model's KV cache needs: estimators that the caches' real sizes are checked against.

Per token and layer a cache stores:

* multi-head / grouped-query attention: keys and values of ``n_kv_groups`` heads, ``2 * n_kv_groups * head_dim``
  numbers (MHA is the case ``n_kv_groups = n_heads``, MQA ``n_kv_groups = 1``);
* multi-head latent attention: one latent and one shared RoPE key, ``kv_lora_rank + qk_rope_head_dim`` numbers;
* a sliding-window layer stores at most ``sliding_window`` tokens, however long the sequence grows;
* a linear-attention layer (gated DeltaNet) keeps a fixed-size state instead: its convolution's last inputs and
  a float32 memory matrix per value head, whatever the number of tokens.
"""

from __future__ import annotations

from .config import ModelConfig


def kv_numbers_per_token(cfg: ModelConfig) -> int:
    """Numbers one token adds to one layer's cache."""
    if cfg.mla is not None:
        return cfg.mla.kv_lora_rank + cfg.mla.qk_rope_head_dim
    return 2 * cfg.resolved_kv_groups * cfg.resolved_head_dim


def kv_cache_bytes(cfg: ModelConfig, n_tokens: int, *, batch_size: int = 1, bytes_per_number: int = 2) -> int:
    """Bytes of KV cache for ``n_tokens`` tokens of ``batch_size`` sequences (default 2 bytes: bf16/fp16)."""
    total = 0
    for layer in range(cfg.n_layers):
        if cfg.is_linear(layer):
            continue  # a fixed-size state, counted below
        window = cfg.layer_window(layer)
        stored = n_tokens if window is None else min(window, n_tokens)
        total += stored * kv_numbers_per_token(cfg)
    total *= batch_size * bytes_per_number
    n_linear = sum(cfg.is_linear(layer) for layer in range(cfg.n_layers))
    if n_linear:
        la = cfg.linear_attn
        conv = (2 * la.n_qk_heads * la.qk_head_dim + la.n_heads * la.v_head_dim) * (la.conv_kernel - 1)
        recurrent = la.n_heads * la.v_head_dim * la.qk_head_dim  # kept in float32 whatever the model dtype
        total += n_linear * batch_size * (conv * bytes_per_number + recurrent * 4)
    return total


def parameter_counts(cfg: ModelConfig) -> dict[str, int]:
    """Stored and active (per token) parameters of ``cfg``, counted on shape-only blocks (no memory used).

    A mixture-of-experts layer stores all its experts but runs only ``n_experts_per_tok`` of them (plus the
    router and any shared experts) for each token; everything else is active for every token.
    """
    import torch

    from .decoder import TransformerBlock

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    embeddings = cfg.vocab_size * cfg.emb_dim * (1 if cfg.tie_embeddings else 2) + cfg.emb_dim  # + final norm
    if cfg.learned_pos_emb:
        embeddings += cfg.context_length * cfg.emb_dim
    total = active = embeddings
    # layers differ only in their kind (linear or softmax attention) and in being dense or MoE: one block of each
    # kind present is built on the meta device and counted
    kinds: dict[tuple[bool, bool], tuple[int, int]] = {}
    for layer in range(cfg.n_layers):
        is_moe = cfg.moe is not None and layer >= cfg.moe.first_dense_layers
        kind = (cfg.is_linear(layer), is_moe)
        if kind not in kinds:
            with torch.device("meta"):
                block = TransformerBlock(cfg if is_moe else cfg.replace(moe=None), layer)
            idle = (cfg.moe.n_experts - cfg.moe.n_experts_per_tok) * count(block.ff.experts[0]) if is_moe else 0
            kinds[kind] = (count(block), idle)
        stored, idle = kinds[kind]
        total += stored
        active += stored - idle
    return {"total": total, "active": active}
