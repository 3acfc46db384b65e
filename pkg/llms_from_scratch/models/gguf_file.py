"""Load GGUF files (llama.cpp's format) through the ``gguf`` package, dequantizing every tensor.

A GGUF file holds the architecture as metadata (``llama.block_count`` ...), the tokenizer (tokens, merges,
special ids, chat template) and the tensors, often quantized in blocks (Q4_1: 32 weights share a scale and
a minimum). llama.cpp's converter reorders Llama's q/k rows into interleaved RoPE pairs; the weight map
permutes them back to the split-half order used here and by Hugging Face.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..files.gguf import GGUFFileError, gguf_field, open_gguf
from .checkpoint_io import check_device_dtype, expected_shapes, load_state_dict_into, tied_names
from .config import ModelConfig
from .loading import build_model
from .weights import Rename, WeightMap, WeightMismatchError, convert_to_ours

_B = "trf_blocks.{}"


def _gguf_map(permute_qk: bool, qk_norm: bool) -> WeightMap:
    entries: dict[str, Any] = {
        "token_embd.weight": "tok_emb.weight",
        "blk.{}.attn_norm.weight": f"{_B}.norm1.scale",
        "blk.{}.attn_q.weight": Rename(f"{_B}.att.W_query.weight", rope_permute="q" if permute_qk else None),
        "blk.{}.attn_k.weight": Rename(f"{_B}.att.W_key.weight", rope_permute="k" if permute_qk else None),
        "blk.{}.attn_v.weight": f"{_B}.att.W_value.weight",
        "blk.{}.attn_output.weight": f"{_B}.att.out_proj.weight",
        "blk.{}.ffn_norm.weight": f"{_B}.norm2.scale",
        "blk.{}.ffn_gate.weight": f"{_B}.ff.fc1.weight",
        "blk.{}.ffn_up.weight": f"{_B}.ff.fc2.weight",
        "blk.{}.ffn_down.weight": f"{_B}.ff.fc3.weight",
        "output_norm.weight": "final_norm.scale",
        "output.weight": "out_head.weight",
    }
    if qk_norm:
        entries["blk.{}.attn_q_norm.weight"] = f"{_B}.att.q_norm.scale"
        entries["blk.{}.attn_k_norm.weight"] = f"{_B}.att.k_norm.scale"
    return WeightMap(entries, ignore=(r"rope_freqs\.weight",))


def gguf_weight_map(cfg: ModelConfig) -> WeightMap:
    """GGUF tensor names -> this package's, for a model with ``cfg`` (also used by ``gguf_quantized.py``)."""
    return _gguf_map(permute_qk=cfg.family == "llama", qk_norm=cfg.qk_norm)


def read_gguf_config(path: str | os.PathLike, reader: Any = None) -> ModelConfig:
    """The :class:`ModelConfig` stored in a GGUF file's metadata (``llama`` and ``qwen3`` architectures)."""
    reader = reader or open_gguf(path)
    arch = gguf_field(reader, "general.architecture")
    if arch not in ("llama", "qwen3"):
        raise GGUFFileError(f"{path}: GGUF architecture {arch!r} is not supported (supported: llama, qwen3)")

    def meta(key: str, default: Any = None) -> Any:
        value = gguf_field(reader, f"{arch}.{key}", default)
        if value is None:  # every field read without a default is one the model cannot be built without
            raise GGUFFileError(f"{path}: the GGUF metadata lacks {arch}.{key}; the file is incomplete or was "
                                "written by a converter this loader does not know")
        return value

    n_heads = int(meta("attention.head_count"))
    emb_dim = int(meta("embedding_length"))
    head_dim = int(meta("attention.key_length", meta("rope.dimension_count", emb_dim // n_heads)))
    names = {t.name for t in reader.tensors}
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab = meta("vocab_size", 0) or (len(tokens.data) if tokens is not None else meta("vocab_size"))
    token_ids = tuple(
        (f"{k}_token_id", int(gguf_field(reader, f"tokenizer.ggml.{k}_token_id")))
        for k in ("bos", "eos", "pad") if gguf_field(reader, f"tokenizer.ggml.{k}_token_id") is not None
    )
    return ModelConfig(
        family="qwen3" if arch == "qwen3" else "llama", vocab_size=int(vocab),
        context_length=int(meta("context_length")), emb_dim=emb_dim, n_layers=int(meta("block_count")),
        n_heads=n_heads, n_kv_groups=int(meta("attention.head_count_kv", n_heads)), head_dim=head_dim,
        hidden_dim=int(meta("feed_forward_length")), norm="rmsnorm",
        # the file stores eps as float32; round-trip through str to recover the intended decimal (1e-5)
        norm_eps=float(f"{float(meta('attention.layer_norm_rms_epsilon')):.6g}"), ffn="swiglu",
        rope_base=float(meta("rope.freq_base", 10_000.0)), qk_norm=arch == "qwen3",
        tie_embeddings="output.weight" not in names, extra=token_ids,
    )


def load_gguf(
    path: str | os.PathLike, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> torch.nn.Module:
    """Load a GGUF checkpoint (quantized or not) into a :class:`DecoderLM` with ``dtype`` weights."""
    from gguf.quants import dequantize

    check_device_dtype(device, dtype)
    reader = open_gguf(path)
    cfg = read_gguf_config(path, reader)
    tensors = {t.name: t for t in reader.tensors}
    with torch.device("meta"):
        model = build_model(cfg)

    def get_tensor(name: str) -> torch.Tensor:
        t = tensors[name]
        try:
            values = dequantize(t.data, t.tensor_type)  # numpy, (rows, cols) = (out, in) like nn.Linear
        except NotImplementedError:
            raise GGUFFileError(f"{path}: tensor {name} is stored as {t.tensor_type.name}, which the installed gguf "
                                "package cannot dequantize; upgrade gguf or use a file quantized as Q4_K, Q8_0, "
                                "F16 or F32") from None
        if not values.flags.writeable:  # unquantized tensors come back as read-only views of the file
            values = np.array(values)
        return torch.from_numpy(np.ascontiguousarray(values)).to(dtype)

    wmap = _gguf_map(permute_qk=cfg.family == "llama", qk_norm=cfg.qk_norm)
    try:
        state = convert_to_ours(tensors, get_tensor, wmap, cfg, expected_shapes(model), shared=tied_names(model),
                                fresh=True)  # dequantized arrays are new memory already
    except WeightMismatchError as exc:
        raise GGUFFileError(f"{path}: {exc}") from None
    return load_state_dict_into(model, state).to(device).eval()
