"""DeepSeek-V3's multi-token prediction (MTP) module and self-speculative greedy decoding with it.

The MTP module predicts the token *after next*. At position ``i`` it combines the main model's final
(normed) hidden state ``h_i`` with the embedding of the next token ``t_{i+1}``::

    x = eh_proj([enorm(embed(t_{i+1})) ; hnorm(h_i)])       # embedding first, then the hidden state
    x = one more decoder layer (latent attention + MoE), RoPE position i
    logits = head(norm(x))                                   # a guess for t_{i+2}

The embedding and the output head are the main model's (the checkpoint stores copies, which must match).

Self-speculative decoding uses it as a free draft model: after each accepted token the MTP guesses the
following one; the main model checks both in one forward pass of two tokens. If the guess equals the main
model's own greedy choice, two tokens are produced for the price of one pass, otherwise the guess is dropped
(and its cache slot rolled back). Either way the output is exactly the plain greedy continuation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..nn import RotaryEmbedding, build_attention_mask
from .blocks import make_cache, make_norm
from .checkpoint_hooks import dequantize_fp8_blocks
from .checkpoint_io import (
    cast_state,
    checkpoint_fp32_names,
    fp32_names,
    open_safetensors,
    safetensors_files,
    tensor_reader,
)
from .config import ModelConfig
from .decoder import DecoderLM, TransformerBlock
from .deepseek import WEIGHT_MAP
from .weights import WeightMap, WeightMismatchError, convert_to_hf, convert_to_ours


class MultiTokenPredictor(nn.Module):
    """DeepSeek-V3's MTP layer; ``save_hf_checkpoint(model, folder, extras=[mtp])`` stores it with the model."""

    def __init__(self, cfg: ModelConfig, tok_emb: nn.Embedding, out_head: nn.Linear) -> None:
        super().__init__()
        self.cfg = cfg
        self.enorm = make_norm(cfg)
        self.hnorm = make_norm(cfg)
        self.eh_proj = nn.Linear(2 * cfg.emb_dim, cfg.emb_dim, bias=False)
        self.block = TransformerBlock(cfg, cfg.n_layers)  # built as the layer after the last (a MoE layer)
        self.block.layer = 0  # ... but it writes to slot 0 of its own one-layer cache
        self.final_norm = make_norm(cfg)  # "shared_head.norm"
        self.rope = RotaryEmbedding(cfg.rope_dim, cfg.rope_base, cfg.rope_scaling)
        self._shared = (tok_emb, out_head)  # the main model's; a tuple keeps them out of this state dict

    def new_cache(self, batch_size: int, max_length: int):
        p = self.eh_proj.weight
        return make_cache(self.cfg.replace(n_layers=1), batch_size, max_length, dtype=p.dtype, device=p.device)

    def forward(self, hidden: torch.Tensor, next_ids: torch.Tensor, cache=None) -> torch.Tensor:
        """``hidden`` (batch, tokens, emb_dim): the main model's final-normed states at positions i;
        ``next_ids`` (batch, tokens): the tokens at positions i + 1. Returns logits for positions i + 2."""
        tok_emb, out_head = self._shared
        b, t = next_ids.shape
        if cache is not None:
            start, positions = cache.append_tokens(torch.ones(b, t, dtype=torch.long, device=next_ids.device))
            valid, _ = cache.visible_keys(None)
            mask = build_attention_mask(t, valid) if start > 0 and t > 1 else None
        else:
            positions = torch.arange(t, device=next_ids.device).expand(b, t)
            mask = None  # plain causal attention over these tokens
        x = self.eh_proj(torch.cat([self.enorm(tok_emb(next_ids)), self.hnorm(hidden)], dim=-1))
        x = self.block(x, mask, self.rope(positions, x.dtype), cache)
        return out_head(self.final_norm(x))

    # the loader's CheckpointExtra protocol (models/loading.py)
    def hf_tensors(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        return mtp_hf_tensors(self, dtype=dtype)

    def hf_config_updates(self) -> dict[str, Any]:
        return {"num_nextn_predict_layers": 1}

    def check_belongs_to(self, model: nn.Module) -> None:
        if getattr(model, "cfg", None) != self.cfg:
            raise ValueError("this multi-token-prediction module was built for another config than the model's")


def mtp_weight_map(cfg: ModelConfig, main_map: WeightMap) -> WeightMap:
    """Checkpoint names of the MTP layer (index ``n_layers``) -> this module's names."""
    layer = f"model.layers.{cfg.n_layers}."
    entries = {
        f"{layer}enorm.weight": "enorm.scale",
        f"{layer}hnorm.weight": "hnorm.scale",
        f"{layer}eh_proj.weight": "eh_proj.weight",
        f"{layer}shared_head.norm.weight": "final_norm.scale",
    }
    for hf, entry in main_map.entries.items():  # the decoder layer inside: the main layers' names
        if hf.startswith("model.layers.{}."):
            entries[hf.replace("model.layers.{}.", layer)] = entry.ours.replace("trf_blocks.{}.", "block.")
    return WeightMap(entries)


def _shared_names(cfg: ModelConfig) -> dict[str, str]:
    layer = f"model.layers.{cfg.n_layers}."
    return {f"{layer}embed_tokens.weight": "tok_emb.weight", f"{layer}shared_head.head.weight": "out_head.weight"}


def load_mtp(path: str | os.PathLike, model: DecoderLM, *, dtype: torch.dtype | None = None) -> MultiTokenPredictor:
    """Load the MTP layer stored in a DeepSeek-V3 checkpoint folder, sharing ``model``'s embedding and head."""
    cfg = model.cfg
    prefix = f"model.layers.{cfg.n_layers}."
    handles = {n: h for n, h in open_safetensors(safetensors_files(Path(path))).items()
               if n.startswith(prefix)}
    if not handles:
        raise WeightMismatchError(f"{path} holds no multi-token-prediction layer ({prefix}*)")

    with torch.device("meta"):
        mtp = MultiTokenPredictor(cfg, model.tok_emb, model.out_head)
    wmap = mtp_weight_map(cfg, WEIGHT_MAP)
    get_tensor = tensor_reader(handles, dtype, checkpoint_fp32_names(mtp, wmap, cfg))
    names, get_tensor = dequantize_fp8_blocks(list(handles), get_tensor, cfg)
    shared = _shared_names(cfg)
    main_state = model.state_dict()
    for name, ours in shared.items():
        if name in handles and not torch.equal(get_tensor(name).to(main_state[ours].dtype), main_state[ours]):
            raise WeightMismatchError(f"{name} differs from the main model's {ours}; the MTP layer is meant to "
                                      "share the main model's embedding and head")
    expected = {n: p.shape for n, p in mtp.state_dict().items()}
    state = convert_to_ours([n for n in names if n not in shared], get_tensor, wmap, cfg, expected)
    mtp.load_state_dict(state, strict=True, assign=True)
    return mtp.to(model.tok_emb.weight.device).eval()


def mtp_hf_tensors(mtp: MultiTokenPredictor, *, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The MTP layer as checkpoint tensors (with the duplicated embedding and head that DeepSeek's files hold);
    ``dtype`` converts floating tensors except those kept in float32 (the correction bias)."""
    cfg = mtp.cfg
    tok_emb, out_head = mtp._shared
    state = {k: v.detach() for k, v in mtp.state_dict().items()}
    state.update({"shared.tok_emb": tok_emb.weight.detach().clone(), "shared.out_head": out_head.weight.detach().clone()})
    state = cast_state(state, dtype, fp32_names(mtp))
    out = convert_to_hf(state, mtp_weight_map(cfg, WEIGHT_MAP), cfg)
    layer = f"model.layers.{cfg.n_layers}."
    out[f"{layer}embed_tokens.weight"] = state["shared.tok_emb"]
    out[f"{layer}shared_head.head.weight"] = state["shared.out_head"]
    return out


@torch.inference_mode()
def generate_self_speculative(
    model: DecoderLM, mtp: MultiTokenPredictor, input_ids: torch.Tensor, max_new_tokens: int, *,
    eos_ids: Iterable[int] | None = None,
) -> tuple[torch.Tensor, dict[str, int]]:
    """Greedy decoding of one sequence with MTP drafts; the tokens equal ``generate(model, ...)``'s.

    Returns (prompt + generated tokens, {"drafted": n, "accepted": m}).
    """
    squeeze = input_ids.dim() == 1
    ids = input_ids[None] if squeeze else input_ids
    if ids.shape[0] != 1:
        raise ValueError("self-speculative decoding runs one sequence at a time (batch size 1)")
    eos = set(eos_ids or ())
    total = ids.shape[1] + max_new_tokens + 1
    cache, mtp_cache = model.new_cache(1, total), mtp.new_cache(1, total)
    captured = {}
    hook = model.final_norm.register_forward_hook(lambda _m, _i, out: captured.__setitem__("h", out))
    out: list[int] = []
    stats = {"drafted": 0, "accepted": 0}
    try:
        if max_new_tokens > 0:
            logits = model(ids, cache=cache)
            out.append(int(logits[0, -1].argmax()))
            # MTP pairs (h_i, t_{i+1}) for every position whose next token is known
            pair_h, pair_next = captured["h"], torch.cat([ids[:, 1:], ids.new_tensor([[out[-1]]])], dim=1)
        while len(out) < max_new_tokens and out[-1] not in eos:
            draft = int(mtp(pair_h, pair_next, cache=mtp_cache)[0, -1].argmax())
            stats["drafted"] += 1
            logits = model(ids.new_tensor([[out[-1], draft]]), cache=cache)  # check the draft in the same pass
            verified = int(logits[0, 0].argmax())
            if verified == draft:
                stats["accepted"] += 1
                out += [draft, int(logits[0, 1].argmax())]
                pair_h, pair_next = captured["h"], ids.new_tensor([out[-2:]])
            else:
                cache.rollback(1)  # forget the draft's keys and values
                out.append(verified)
                pair_h, pair_next = captured["h"][:, :1], ids.new_tensor([[verified]])
    finally:
        hook.remove()
    out = out[:max_new_tokens]
    for i, tok in enumerate(out):
        if tok in eos:
            out = out[: i + 1]
            break
    result = torch.cat([ids, ids.new_tensor([out])], dim=1) if out else ids
    return (result[0] if squeeze else result), stats
