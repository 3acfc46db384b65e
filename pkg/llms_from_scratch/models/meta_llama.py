"""Meta's original Llama checkpoints (``params.json`` + ``consolidated.00.pth``).

Meta's code applies RoPE to interleaved feature pairs, so its ``wq``/``wk`` rows are in interleaved order;
the map permutes them into the split-half order (the same permutation Hugging Face's converter applies).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..nn.rope import RopeScaling
from .checkpoint_io import atomic_path, check_device_dtype, expected_shapes, load_state_dict_into, tied_names
from .config import ModelConfig
from .llama import llama_config
from .loading import build_model
from .weights import Rename, WeightMap, convert_to_hf, convert_to_ours

_B = "trf_blocks.{}"
META_WEIGHT_MAP = WeightMap({
    "tok_embeddings.weight": "tok_emb.weight",
    "layers.{}.attention_norm.weight": f"{_B}.norm1.scale",
    "layers.{}.attention.wq.weight": Rename(f"{_B}.att.W_query.weight", rope_permute="q"),
    "layers.{}.attention.wk.weight": Rename(f"{_B}.att.W_key.weight", rope_permute="k"),
    "layers.{}.attention.wv.weight": f"{_B}.att.W_value.weight",
    "layers.{}.attention.wo.weight": f"{_B}.att.out_proj.weight",
    "layers.{}.ffn_norm.weight": f"{_B}.norm2.scale",
    "layers.{}.feed_forward.w1.weight": f"{_B}.ff.fc1.weight",  # gate
    "layers.{}.feed_forward.w3.weight": f"{_B}.ff.fc2.weight",  # up
    "layers.{}.feed_forward.w2.weight": f"{_B}.ff.fc3.weight",  # down
    "norm.weight": "final_norm.scale",
    "output.weight": "out_head.weight",
}, ignore=(r"rope\.freqs",))


def config_from_params(params: dict, context_length: int = 8192) -> ModelConfig:
    """Meta's ``params.json`` -> :class:`ModelConfig` (the FFN width follows Meta's rounding rule)."""
    dim = params["dim"]
    hidden = int(2 * (4 * dim) / 3)
    if params.get("ffn_dim_multiplier") is not None:
        hidden = int(params["ffn_dim_multiplier"] * hidden)
    multiple = params.get("multiple_of", 256)
    hidden = multiple * ((hidden + multiple - 1) // multiple)
    scaling = None
    if params.get("use_scaled_rope"):
        scaling = RopeScaling("llama3", factor=float(params.get("rope_scaling_factor", 8.0)),
                              original_context_length=8192)
    return llama_config(
        vocab_size=params["vocab_size"], context_length=context_length, emb_dim=dim, n_layers=params["n_layers"],
        n_heads=params["n_heads"], n_kv_groups=params.get("n_kv_heads") or params["n_heads"], hidden_dim=hidden,
        norm_eps=params.get("norm_eps", 1e-5), rope_base=float(params.get("rope_theta", 10_000.0)),
        rope_scaling=scaling, tie_embeddings=False,
    )


def load_meta_llama_checkpoint(
    folder: str | os.PathLike, *, config: ModelConfig | None = None, dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> torch.nn.Module:
    """Load a single-file Meta Llama checkpoint folder; ``config`` overrides what ``params.json`` implies."""
    check_device_dtype(device, dtype)
    folder = Path(folder)
    shards = sorted(folder.glob("consolidated.*.pth"))
    if len(shards) != 1:
        raise ValueError(f"expected exactly one consolidated.*.pth in {folder}, found {len(shards)}; "
                         "model-parallel shards must be merged first")
    # mmap: tensors are paged in as they are converted instead of read all at once
    raw = torch.load(shards[0], map_location="cpu", weights_only=True, mmap=True)
    if config is None:
        params = json.loads((folder / "params.json").read_text(encoding="utf-8"))
        if params.get("vocab_size", -1) <= 0:  # Llama 2 leaves it to the tokenizer (-1)
            params["vocab_size"] = raw["tok_embeddings.weight"].shape[0]
        config = config_from_params(params)
    cfg = config
    with torch.device("meta"):
        model = build_model(cfg)

    def get_tensor(name: str) -> torch.Tensor:
        return raw[name].to(dtype) if dtype is not None else raw[name]

    state = convert_to_ours(raw, get_tensor, META_WEIGHT_MAP, cfg, expected_shapes(model),
                            shared=tied_names(model))
    return load_state_dict_into(model, state).to(device).eval()


def save_meta_llama_checkpoint(model: torch.nn.Module, folder: str | os.PathLike) -> Path:
    """Write a model in Meta's layout (used to test the loader; q/k rows are re-interleaved)."""
    cfg = model.cfg
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = convert_to_hf(model.state_dict(), META_WEIGHT_MAP, cfg)
    with atomic_path(folder / "consolidated.00.pth") as tmp:
        torch.save(tensors, tmp)
    params = {"dim": cfg.emb_dim, "n_layers": cfg.n_layers, "n_heads": cfg.n_heads,
              "n_kv_heads": cfg.resolved_kv_groups, "vocab_size": cfg.vocab_size, "norm_eps": cfg.norm_eps,
              "rope_theta": cfg.rope_base, "use_scaled_rope": cfg.rope_scaling is not None,
              # Meta derives the FFN width from dim; these two values make the rule land on hidden_dim exactly
              "multiple_of": cfg.hidden_dim, "ffn_dim_multiplier": cfg.hidden_dim / int(8 * cfg.emb_dim / 3)}
    if cfg.rope_scaling is not None:
        params["rope_scaling_factor"] = cfg.rope_scaling.factor
    with atomic_path(folder / "params.json") as tmp:
        tmp.write_text(json.dumps(params), encoding="utf-8")
    return folder
