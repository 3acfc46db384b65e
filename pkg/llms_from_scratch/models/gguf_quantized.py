"""Load a GGUF file with its weight matrices kept quantized: no float copy of a quantized matrix, at any time.

``load_gguf`` (``gguf_file.py``) dequantizes every tensor to float; this loader instead reads each Q8_0, Q4_0 or
Q4_1 tensor's bytes straight into a :class:`~llms_from_scratch.quant.QuantizedLinear` (or, for the token table, a
:class:`~llms_from_scratch.quant.QuantizedEmbedding`), so the model takes about the file's size in memory.

* ``quantize="gguf"`` keeps the file's own block formats. ``"int8"`` (per output channel) and ``"int4"`` (groups
  of 32) convert every linear weight, a slice of rows at a time (:func:`~llms_from_scratch.quant.requantize`).
  Tensors in block formats this package does not read (the K-quants) are dequantized one at a time and stored as
  int8 per channel; float tensors (norms, an F16 matrix) load as floats in ``dtype``.
* llama.cpp's converter stores a Llama model's query and key rows in interleaved RoPE order. Rows of a block
  format are independent (each holds its own blocks), so the permutation back to split-half order is a selection
  of rows, done on the codes and scales.
* A tied output head (SmolLM2's) reads the whole token table every step. ``head="int8"`` (the default) stores a
  per-channel int8 copy of it, for which PyTorch has a fast kernel; ``head="file"`` shares the table as the file
  stores it (no second copy, but GGUF's blocks of 32 fit no PyTorch kernel, so every step dequantizes it).

Norm weights, and the activations, are in ``dtype``. ``kernel="auto"`` then measures PyTorch's quantized kernels
against the plain dequantize-then-multiply path for ``rows`` input rows, and the query/key/value and gate/up
layers stacked into one product each against separate products (``choose_stacking``), keeping what is faster.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from ..files.gguf import open_gguf
from ..quant import (
    FORMATS,
    QuantizedEmbedding,
    QuantizedLinear,
    QuantizedWeight,
    choose_stacking,
    from_gguf_bytes,
    quantize_weight,
    requantize,
)
from ..quant.model import replace_module
from .checkpoint_io import check_device_dtype
from .gguf_file import gguf_weight_map, read_gguf_config
from .loading import build_model
from .weights import WeightMismatchError, permute_for_rope

QUANTIZE = ("gguf", "int8", "int4")
HEADS = ("int8", "file")
FLOAT_TYPES = ("F32", "F16", "BF16", "F64")
EMBEDDING, HEAD = "tok_emb", "out_head"


def load_gguf_quantized(
    path: str | os.PathLike, quantize: str = "gguf", *, head: str = "int8", dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu", kernel: str = "auto", rows: int = 1,
    activations: tuple[torch.dtype, ...] = (),
) -> nn.Module:
    """A :class:`DecoderLM` from a GGUF file whose linear layers stay quantized (see the module's docstring).

    ``kernel="auto"``: kernels and stacked projections measured for ``rows`` input rows (``choose_stacking``);
    ``activations=(torch.bfloat16,)`` lets products run on bfloat16 activations where that is faster.
    """
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    if kernel not in ("auto", "plain"):
        raise ValueError(f"kernel must be 'auto' or 'plain', got {kernel!r}")
    check_device_dtype(device, dtype)
    reader = open_gguf(path)
    cfg = read_gguf_config(path, reader)
    with torch.device("meta"):
        model = build_model(cfg)
    wmap = gguf_weight_map(cfg)
    table = wmap.expand_for(cfg)
    heads = {"q": cfg.n_heads, "k": cfg.resolved_kv_groups}

    floats: dict[str, torch.Tensor] = {}
    unused, bad = [], []
    for tensor in reader.tensors:
        entry = table.get(tensor.name)
        if entry is None:
            if not wmap.is_ignored(tensor.name):
                unused.append(tensor.name)
            continue
        module_name, _, attr = entry.ours.rpartition(".")
        module = model.get_submodule(module_name)
        expected = tuple(getattr(module, attr).shape)
        shape = tuple(int(n) for n in reversed(tensor.shape))  # GGUF lists dimensions innermost first
        if shape != expected:
            bad.append(f"{tensor.name} -> {entry.ours}: file shape {shape}, model expects {expected}")
            continue
        perm = None
        if entry.rope_permute is not None:
            perm = permute_for_rope(torch.arange(shape[0]), heads[entry.rope_permute])  # row order, split-half
        kind = tensor.tensor_type.name
        if module_name in (EMBEDDING, HEAD) or isinstance(module, nn.Linear):
            if kind not in FLOAT_TYPES:
                qw = _quantized(tensor, kind, shape)
                qw = qw if perm is None else qw.select_rows(perm)
                if module_name == EMBEDDING:
                    replace_module(model, EMBEDDING, QuantizedEmbedding(qw, dtype))
                else:
                    replace_module(model, module_name, QuantizedLinear(_convert(qw, quantize, module_name, head)))
                continue
            if quantize != "gguf" and module_name not in (EMBEDDING, HEAD):
                weight = _float(tensor, perm)
                replace_module(model, module_name, QuantizedLinear(quantize_weight(weight, quantize)))
                continue
        floats[entry.ours] = _float(tensor, perm).to(dtype)

    model.load_state_dict(floats, strict=False, assign=True)
    if cfg.tie_embeddings:
        _tie_head(model, head)
    elif head == "int8" and type(model.out_head) is nn.Linear and not model.out_head.weight.is_meta:
        model.out_head = QuantizedLinear(quantize_weight(model.out_head.weight, "int8"))
    still_meta = sorted({n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta})
    if unused or bad or still_meta:
        raise WeightMismatchError(_mismatch(path, unused, bad, still_meta))
    model = model.to(device).eval()
    if kernel == "auto":
        model = choose_stacking(model, rows, dtype, activations)
    return model


def _quantized(tensor: Any, kind: str, shape: tuple[int, int]) -> QuantizedWeight:
    """A file tensor in a block format as a :class:`QuantizedWeight`: its own bytes where this package reads the
    format, else (K-quants) dequantized by the ``gguf`` package and stored as int8 per channel."""
    fmt = kind.lower()
    if fmt in FORMATS:
        return from_gguf_bytes(tensor.data, fmt, shape)
    return quantize_weight(_float(tensor, None), "int8")


def _convert(qw: QuantizedWeight, quantize: str, module_name: str, head: str) -> QuantizedWeight:
    """``qw`` in the scheme its layer asks for: an untied output head int8 per channel (``head="int8"``) or as
    stored; other layers as stored (``quantize="gguf"``) or converted to ``quantize``."""
    target = ("int8" if head == "int8" else None) if module_name == HEAD else (
        None if quantize == "gguf" else quantize)
    if target is None or (qw.scheme == target and (target != "int8" or qw.group_size == qw.shape[1])):
        return qw
    return requantize(qw, target)


def _float(tensor: Any, perm: torch.Tensor | None) -> torch.Tensor:
    """One file tensor as float32 (its own memory, not a view of the file), rows reordered by ``perm``."""
    from gguf.quants import dequantize

    shape = tuple(int(n) for n in reversed(tensor.shape))
    values = np.array(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32).reshape(shape)
    out = torch.from_numpy(values)
    return out if perm is None else out[perm]


def _tie_head(model: nn.Module, head: str) -> None:
    """Give a tied model its output head: an int8 copy of the token table, or the table itself."""
    table = model.tok_emb
    if isinstance(table, QuantizedEmbedding):
        qw = table.quantized_weight()
        model.out_head = QuantizedLinear(requantize(qw, "int8") if head == "int8" else qw)
    elif head == "int8":
        model.out_head = QuantizedLinear(quantize_weight(table.weight, "int8"))
    else:
        model.out_head.weight = table.weight


def _mismatch(path: Any, unused: list[str], bad: list[str], missing: list[str]) -> str:
    parts = [f"the GGUF file {path} does not fit the model its metadata describes:"]
    if bad:
        parts.append("wrong shapes: " + "; ".join(bad[:6]))
    if missing:
        parts.append("not in the file: " + ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else ""))
    if unused:
        parts.append("no place in the model: " + ", ".join(unused[:6]) + (" ..." if len(unused) > 6 else ""))
    return " ".join(parts)
