"""Checkpoint preparation hooks (``Family.prepare_checkpoint``): checks and rewrites applied before mapping.

* :func:`check_expert_count`: a mixture-of-experts checkpoint must hold exactly ``n_experts`` experts in
  every MoE layer; otherwise the error says so plainly instead of listing hundreds of unmatched tensors.
* :func:`dequantize_fp8_blocks`: DeepSeek-V3 ships its linear weights as ``float8_e4m3fn`` plus a float32
  ``<name>_scale_inv`` holding one scale per 128 x 128 block; the weight is ``q[i, j] * scale[i // 128,
  j // 128]``. Weights whose size is not a multiple of 128 (``kv_a_proj_with_mqa``: 576 rows) end in a
  partial block, so the block size must come from the config, never from ``rows // scale_rows``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch

from .config import ModelConfig

GetTensor = Callable[[str], torch.Tensor]
_EXPERT_KEY = re.compile(r"layers\.(\d+)\.mlp\.experts\.(\d+)\.")


def check_expert_count(names: list[str], get_tensor: GetTensor, cfg: ModelConfig) -> tuple[list[str], GetTensor]:
    found: dict[int, set[int]] = {}
    for name in names:
        m = _EXPERT_KEY.search(name)
        if m:
            found.setdefault(int(m[1]), set()).add(int(m[2]))
    expected = cfg.moe.n_experts if cfg.moe is not None else 0
    for layer, experts in sorted(found.items()):
        if layer >= cfg.n_layers:
            continue  # DeepSeek's multi-token-prediction layer sits after the last layer
        if len(experts) != expected or max(experts) != expected - 1:
            raise ValueError(
                f"layer {layer} of the checkpoint holds {len(experts)} experts (ids {min(experts)}..{max(experts)}) "
                f"but the config says n_experts={expected}; the config.json does not describe these weights"
            )
    return names, get_tensor


def dequantize_block_fp8(q: torch.Tensor, scale_inv: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """``q`` (rows, cols) times one scale per ``block`` tile, read from ``scale_inv`` (ceil(rows/b0), ceil(cols/b1))."""
    rows, cols = q.shape
    want = (math.ceil(rows / block[0]), math.ceil(cols / block[1]))
    if tuple(scale_inv.shape) != want:
        raise ValueError(f"a {rows}x{cols} weight in {block[0]}x{block[1]} blocks needs a scale grid of {want}, "
                         f"got {tuple(scale_inv.shape)}")
    # repeat every scale over its tile, then cut the partial last tiles down to the weight's size
    scales = scale_inv.float().repeat_interleave(block[0], dim=0)[:rows].repeat_interleave(block[1], dim=1)[:, :cols]
    return q.float() * scales


def dequantize_fp8_blocks(names: list[str], get_tensor: GetTensor, cfg: ModelConfig) -> tuple[list[str], GetTensor]:
    """Hide the ``*_scale_inv`` tensors and return dequantized weights in their place.

    Weights arrive in the dtype the loader was asked for (bfloat16 when it was not asked for one, as in
    DeepSeek's own conversion); a float8 weight without its scale is an error.
    """
    block = tuple(cfg.info("fp8_block_size", (128, 128)))
    scales = {n[: -len("_scale_inv")] for n in names if n.endswith("_scale_inv")}
    kept = [n for n in names if not n.endswith("_scale_inv")]

    def get(name: str) -> torch.Tensor:
        t = get_tensor(name)
        if name not in scales:
            if t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
                raise ValueError(f"{name} is stored in {t.dtype} but the checkpoint has no {name}_scale_inv to "
                                 "dequantize it with; the file is incomplete (re-download that shard)")
            return t
        out_dtype = t.dtype if t.dtype not in (torch.float8_e4m3fn, torch.float8_e5m2) else torch.bfloat16
        return dequantize_block_fp8(t, get_tensor(name + "_scale_inv"), block).to(out_dtype)

    return kept, get
