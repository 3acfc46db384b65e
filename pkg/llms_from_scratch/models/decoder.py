"""The one decoder-only language model that every decoder family of the zoo is (GPT-2, Llama 2/3, SmolLM2,
Qwen1, Qwen3, Qwen3-MoE, Mistral, DeepSeek-V3, Gemma 3, OLMo 3, SmolLM3, Qwen3-Next, gpt-oss; ``models/families.py``
lists them).

The families differ only in choices the config spells out: learned positions or RoPE (one base for all layers,
another for the sliding-window layers, or none in some layers), LayerNorm or RMSNorm, GELU MLP, SwiGLU, GeGLU
or a mixture of experts, grouped-query or latent attention, biases, QK-norm, attention sinks, sliding windows,
where the norms sit in each block, scaled and tied input/output embeddings, and which layers mix tokens with linear attention
(gated DeltaNet) instead of softmax attention. The forward pass is the same residual stack for
all of them.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import KVCacheBase, RotaryEmbedding, build_attention_mask
from .blocks import make_attention, make_cache, make_ffn, make_norm
from .config import ModelConfig


class TransformerBlock(nn.Module):
    """A residual block; ``cfg.norm_placement`` says where it normalizes (an absent norm before a sublayer is
    ``nn.Identity``, an absent norm after one is ``None``, so a pre-norm block holds exactly the modules it uses):

    * "pre" (GPT-2, Llama, Qwen ...): ``x + att(norm1(x))``, then ``x + ff(norm2(x))``;
    * "sandwich" (Gemma 3): ``x + post_att_norm(att(norm1(x)))``, then ``x + post_ff_norm(ff(norm2(x)))``;
    * "post" (OLMo 3): ``x + post_att_norm(att(x))``, then ``x + post_ff_norm(ff(x))``. Unlike the original
      Transformer's post-norm, the residual stream itself is never normalized.

    In a linear-attention layer (``cfg.is_linear(layer)``) ``att`` is a gated DeltaNet; its ``mask`` is then the
    (batch, tokens) padding mask of the new tokens (or None), which keeps padding out of its recurrent state.
    """

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.linear = cfg.is_linear(layer)
        pre, post = cfg.norm_placement in ("pre", "sandwich"), cfg.norm_placement in ("sandwich", "post")
        self.norm1 = make_norm(cfg) if pre else nn.Identity()
        self.att = make_attention(cfg, layer)
        self.post_att_norm = make_norm(cfg) if post else None
        self.norm2 = make_norm(cfg) if pre else nn.Identity()
        self.ff = make_ffn(cfg, layer)
        self.post_ff_norm = make_norm(cfg) if post else None
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(self, x, mask, rope, cache):
        if self.linear:
            h = self.att(self.norm1(x), cache, self.layer, mask)
        else:
            h = self.att(self.norm1(x), mask, rope, cache, self.layer)
        if self.post_att_norm is not None:
            h = self.post_att_norm(h)
        x = x + self.drop_shortcut(h)
        h = self.ff(self.norm2(x))
        if self.post_ff_norm is not None:
            h = self.post_ff_norm(h)
        return x + self.drop_shortcut(h)


class DecoderLM(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.family == "bert":
            raise ValueError("BERT is an encoder; build it with EncoderMLM (or build_model)")
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim) if cfg.learned_pos_emb else None
        self.rope = None if cfg.learned_pos_emb else RotaryEmbedding(cfg.rope_dim, cfg.rope_base, cfg.rope_scaling)
        # sliding-window layers with a RoPE of their own (Gemma 3's local base); see ModelConfig.layer_rope
        self.sliding_rope = (RotaryEmbedding(cfg.rope_dim, cfg.sliding_rope_base)
                             if cfg.sliding_rope_base is not None else None)
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.ModuleList(TransformerBlock(cfg, i) for i in range(cfg.n_layers))
        self.final_norm = make_norm(cfg)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        self.tie_weights()

    def tie_weights(self) -> None:
        """Share the output projection with the token embedding when the family ties them."""
        if self.cfg.tie_embeddings:
            self.out_head.weight = self.tok_emb.weight

    def new_cache(self, batch_size: int, max_length: int) -> KVCacheBase:
        """An empty KV cache for ``batch_size`` rows of up to ``max_length`` tokens, on the model's device."""
        p = self.tok_emb.weight
        return make_cache(self.cfg, batch_size, max_length, dtype=p.dtype, device=p.device)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: KVCacheBase | None = None,
        last_token_only: bool = False,
    ) -> torch.Tensor:
        """``input_ids`` (batch, tokens) -> logits (batch, tokens, vocab_size).

        ``attention_mask`` (batch, tokens) marks real tokens with 1 and left padding with 0. With a ``cache``
        the input holds only the new tokens and attends to everything cached before them.
        ``last_token_only`` computes logits for the final position only (what generation needs).
        """
        b, t = input_ids.shape
        has_padding = attention_mask is not None and not bool(attention_mask.all())
        if attention_mask is None:
            attention_mask = torch.ones(b, t, dtype=torch.bool, device=input_ids.device)
        if cache is not None:
            start, positions = cache.append_tokens(attention_mask, padded=has_padding)
            key_valid = cache.key_valid[:, : start + t]
            has_padding = cache.has_padding  # padding in any cached slot, this call's included
        else:
            start = 0
            key_valid = attention_mask.bool()
            # a row's positions count its real tokens only, so left padding does not shift them
            positions = (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)
        if self.pos_emb is not None and int(positions.max()) >= self.cfg.context_length:
            raise ValueError(
                f"position {int(positions.max())} exceeds the learned position table ({self.cfg.context_length})"
            )
        if self.cfg.strict_context and int(positions.max()) >= self.cfg.context_length:
            raise ValueError(
                f"the input reaches position {int(positions.max())}, beyond this {self.cfg.family} model's "
                f"context_length {self.cfg.context_length}: there the original model switches on dynamic NTK RoPE "
                "and logN attention scaling, which this package does not implement. Shorten the prompt (or "
                "max_new_tokens) to stay within context_length tokens."
            )

        x = self.tok_emb(input_ids)  # (batch, tokens, emb_dim)
        if self.cfg.scale_embeddings:
            # Gemma: the table is shared with the output head, whose logits want small entries; the inputs are
            # scaled up to the size of the residual stream (the factor is rounded to the model's dtype first)
            x = x * torch.tensor(self.cfg.emb_dim**0.5, dtype=x.dtype)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)
        x = self.drop_emb(x)
        ropes = {None: None}
        if self.rope is not None:
            ropes["global"] = self.rope(positions, x.dtype)
        if self.sliding_rope is not None:
            ropes["sliding"] = self.sliding_rope(positions, x.dtype)

        masks: dict[int | None, torch.Tensor | None] = {}
        # linear layers see no attention mask, only which of the new tokens are padding (None: none are)
        linear_padding = self.cfg.linear_attn is not None and not bool(attention_mask.all())
        padding = attention_mask if linear_padding else None
        for block in self.trf_blocks:
            if block.linear:
                x = block(x, padding, None, cache)
                continue
            window = block.att.sliding_window
            if window not in masks:
                # plain causal attention needs no explicit mask, which lets SDPA take its fastest path
                needs_mask = has_padding or window is not None or (start > 0 and t > 1)
                # a ring-buffer cache returns its keys out of order: it says which slot each key holds
                valid, slots = cache.visible_keys(window) if cache is not None else (key_valid, None)
                masks[window] = build_attention_mask(t, valid, sliding_window=window, key_slots=slots) if (
                    needs_mask) else None
            x = block(x, masks[window], ropes[self.cfg.layer_rope(block.layer)], cache)

        if last_token_only:
            x = x[:, -1:]
        return self.out_head(self.final_norm(x))
