"""Declarative weight maps: how a checkpoint's tensor names map onto this package's modules.

A family file lists its mapping as data, for example::

    WEIGHT_MAP = WeightMap({
        "model.embed_tokens.weight": "tok_emb.weight",
        "model.layers.{}.self_attn.q_proj.weight": "trf_blocks.{}.att.W_query.weight",
        "h.{}.attn.c_attn.weight": Split(("...W_query.weight", "...W_key.weight", "...W_value.weight"),
                                         transpose=True),
    })

``{}`` stands for the layer index and ``{e}`` for the expert index of a mixture-of-experts layer. :func:`convert_to_ours` applies a map and checks coverage both ways:
every checkpoint tensor must be used (or explicitly ignored) and every model tensor must be produced, and
each shape must fit. :func:`convert_to_hf` runs the same map backwards for export.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch

from .config import ModelConfig


@dataclass(frozen=True)
class Rename:
    """One checkpoint tensor is one model tensor.

    ``transpose``: GPT-2's Conv1D stores (in, out); ``nn.Linear`` wants (out, in).
    ``rope_permute``: "q" or "k" when the checkpoint stores rows in Meta's interleaved RoPE order (original
    Llama files, GGUF); the rows are reordered to the split-half order the model uses.
    """

    ours: str
    transpose: bool = False
    rope_permute: str | None = None


@dataclass(frozen=True)
class Split:
    """One checkpoint tensor holds several model tensors side by side (GPT-2's fused ``c_attn``)."""

    ours: tuple[str, ...]
    transpose: bool = False


Entry = str | Rename | Split


class WeightMap:
    def __init__(self, entries: Mapping[str, Entry], ignore: Iterable[str] = ()) -> None:
        self.entries = {k: Rename(v) if isinstance(v, str) else v for k, v in entries.items()}
        # ignored checkpoint tensors: buffers and heads the model does not use (regular expressions)
        self.ignore = tuple(re.compile(p) for p in ignore)

    def expand(self, n_layers: int, n_experts: int = 0) -> dict[str, Rename | Split]:
        """Concrete checkpoint name -> entry, with ``{}`` filled in for every layer (``{e}``: every expert)."""
        out: dict[str, Rename | Split] = {}
        for hf, entry in _expand_experts(self.entries, n_experts).items():
            layers = range(n_layers) if "{}" in hf else [None]
            for i in layers:
                index = "" if i is None else str(i)
                if isinstance(entry, Rename):
                    ours = entry.ours.replace("{}", index)
                    out[hf.replace("{}", index)] = Rename(ours, entry.transpose, entry.rope_permute)
                else:
                    ours_parts = tuple(o.replace("{}", index) for o in entry.ours)
                    out[hf.replace("{}", index)] = Split(ours_parts, entry.transpose)
        return out

    def expand_for(self, cfg: ModelConfig) -> dict[str, Rename | Split]:
        return self.expand(cfg.n_layers, cfg.moe.n_experts if cfg.moe is not None else 0)

    def is_ignored(self, name: str) -> bool:
        return any(p.fullmatch(name) for p in self.ignore)


def _expand_experts(entries: Mapping[str, Rename | Split], n_experts: int) -> dict[str, Rename | Split]:
    out: dict[str, Rename | Split] = {}
    for hf, entry in entries.items():
        if "{e}" not in hf:
            out[hf] = entry
            continue
        for e in range(n_experts):
            if isinstance(entry, Rename):
                out[hf.replace("{e}", str(e))] = Rename(entry.ours.replace("{e}", str(e)), entry.transpose,
                                                        entry.rope_permute)
            else:
                out[hf.replace("{e}", str(e))] = Split(tuple(o.replace("{e}", str(e)) for o in entry.ours),
                                                       entry.transpose)
    return out


class WeightMismatchError(ValueError):
    """A checkpoint does not fit the model: missing, unused or wrongly shaped tensors."""


def permute_for_rope(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder q/k projection rows from interleaved RoPE pairs to split-half pairs (per head).

    Within each head, rows (0, 1), (2, 3), ... form rotation pairs in Meta's layout; split-half wants row i
    paired with row i + head_dim/2. Bias vectors (1-D) are handled too.
    """
    shape = w.shape
    rows = shape[0]
    # (heads * head_dim, ...) -> (heads, head_dim/2, 2, ...) -> swap the pair axis in front -> flatten back
    w = w.reshape(n_heads, rows // n_heads // 2, 2, *shape[1:])
    return w.transpose(1, 2).reshape(shape)


def unpermute_for_rope(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of :func:`permute_for_rope` (split-half rows back to interleaved pairs)."""
    shape = w.shape
    w = w.reshape(n_heads, 2, shape[0] // n_heads // 2, *shape[1:])
    return w.transpose(1, 2).reshape(shape)


def _heads_for(kind: str, cfg: ModelConfig) -> int:
    return cfg.n_heads if kind == "q" else cfg.resolved_kv_groups


def _own_memory(part: torch.Tensor, source: int | None) -> torch.Tensor:
    """``part`` in contiguous memory of its own, copied exactly once.

    Readers may hand out views of a memory-mapped checkpoint file (``source`` is the data pointer of the
    storage they returned; None: the reader never does). A transpose or a permutation already copies when made
    contiguous; a tensor used as it is gets cloned here, so no parameter keeps the mapping (and with it the
    file's pages) alive.
    """
    part = part.contiguous()
    return part.clone() if part.untyped_storage().data_ptr() == source else part


def convert_to_ours(
    names: Iterable[str],
    get_tensor: Callable[[str], torch.Tensor],
    wmap: WeightMap,
    cfg: ModelConfig,
    expected: Mapping[str, torch.Size],
    *,
    strip_prefixes: tuple[str, ...] = (),
    optional: Iterable[str] = (),
    shared: Iterable[str] = (),
    fresh: bool = False,
) -> dict[str, torch.Tensor]:
    """Map checkpoint tensors to model tensors, reading each tensor once.

    ``expected`` maps every model tensor name to its shape. ``optional`` model names may be absent from the
    checkpoint. ``shared`` model names are tied to another tensor: a checkpoint copy of them is accepted
    and dropped (tied output heads). ``fresh``: ``get_tensor`` returns memory of its own, never a view of a
    file, so a tensor used as it is needs no copy (see :func:`_own_memory`). Raises :class:`WeightMismatchError`
    listing every problem.
    """
    table = wmap.expand_for(cfg)
    shared = set(shared)
    out: dict[str, torch.Tensor] = {}
    unused, bad_shapes = [], []
    offered: set[str] = set()  # model tensors the checkpoint has an entry for, right shape or not
    for name in names:
        key = name
        for prefix in strip_prefixes:
            if key.startswith(prefix) and key[len(prefix):] in table:
                key = key[len(prefix):]
                break
        entry = table.get(key)
        if entry is None:
            stripped = [key[len(p):] for p in strip_prefixes if key.startswith(p)]
            if not any(wmap.is_ignored(k) for k in [key, *stripped]):
                unused.append(name)
            continue
        tensor = get_tensor(name)
        source = None if fresh else tensor.untyped_storage().data_ptr()  # may be a file mapping (_own_memory)
        if entry.transpose:
            tensor = tensor.t()
        if isinstance(entry, Split):
            parts = tensor.chunk(len(entry.ours), dim=0) if tensor.shape[0] % len(entry.ours) == 0 else [tensor]
            targets = entry.ours
        else:
            if entry.rope_permute is not None:
                tensor = permute_for_rope(tensor, _heads_for(entry.rope_permute, cfg))
            parts, targets = [tensor], (entry.ours,)
        if len(parts) != len(targets):
            bad_shapes.append(f"{name}: shape {tuple(tensor.shape)} cannot be split into {len(targets)} equal parts")
            offered.update(targets)
            continue
        for target, part in zip(targets, parts):
            if target in shared:
                continue
            offered.add(target)
            want = expected.get(target)
            if want is None:
                unused.append(name)
            elif tuple(part.shape) != tuple(want):
                bad_shapes.append(
                    f"{name} -> {target}: checkpoint shape {tuple(part.shape)}, model expects {tuple(want)}"
                )
            else:
                out[target] = _own_memory(part, source)
    # a wrongly shaped tensor is reported once, as such, not again as missing; a split tensor that has no place
    # in the model is listed once, not once per part
    missing = sorted(set(expected) - set(out) - offered - set(optional))
    unused = list(dict.fromkeys(unused))
    if unused or missing or bad_shapes:
        raise WeightMismatchError(_mismatch_message(cfg, unused, missing, bad_shapes))
    return out


def convert_to_hf(
    state: Mapping[str, torch.Tensor], wmap: WeightMap, cfg: ModelConfig, *, prefix: str = "",
    skip: Iterable[str] = (),
) -> dict[str, torch.Tensor]:
    """Run the map backwards: model state dict -> checkpoint tensors (``skip`` drops checkpoint names)."""
    skip = set(skip)
    out = {}
    for hf_name, entry in wmap.expand_for(cfg).items():
        if hf_name in skip:
            continue
        if isinstance(entry, Split):
            if not all(o in state for o in entry.ours):
                continue
            tensor = torch.cat([state[o] for o in entry.ours], dim=0)
        else:
            if entry.ours not in state:
                continue
            tensor = state[entry.ours]
            if entry.rope_permute is not None:
                tensor = unpermute_for_rope(tensor, _heads_for(entry.rope_permute, cfg))
        if entry.transpose:
            tensor = tensor.t()
        out[prefix + hf_name] = tensor.contiguous()
    return out


def _mismatch_message(cfg: ModelConfig, unused: list[str], missing: list[str], bad: list[str]) -> str:
    def listing(items: list[str]) -> str:
        shown = "\n    ".join(items[:12])
        more = f"\n    ... and {len(items) - 12} more" if len(items) > 12 else ""
        return shown + more

    lines = [f"the checkpoint does not fit the {cfg.family} config (emb_dim={cfg.emb_dim}, n_layers={cfg.n_layers}):"]
    if bad:
        lines.append(f"  tensors with the wrong shape:\n    {listing(bad)}")
    if missing:
        lines.append(f"  model tensors the checkpoint does not provide:\n    {listing(missing)}")
    if unused:
        lines.append(f"  checkpoint tensors the model has no place for:\n    {listing(unused)}")
    lines.append("Check that the config (or the config.json next to the weights) describes this checkpoint.")
    return "\n".join(lines)
