"""OpenAI's GPT-2 weights in the book's ``GPTModel``, read from Hugging Face safetensors files (no TensorFlow).

The four released sizes live on the Hugging Face hub as ``openai-community/gpt2`` (-medium, -large, -xl). Each
repository holds one ``model.safetensors`` whose tensors use GPT-2's original names (``h.0.attn.c_attn.weight``).
:func:`load_gpt2_params` fetches such a file through the data layer (checksum, cache, mirror, progress bar) and
returns its state dict; :func:`load_weights_into_gpt` copies a state dict into a ``GPTModel``.

The copy is strict in both directions: every model parameter must receive a tensor, every checkpoint tensor must
be used, and every shape must match. Anything else raises a :class:`CheckpointMismatchError` that names the
tensor, so a wrong model size or a ``qkv_bias=False`` model fails loudly instead of producing gibberish.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .data import Asset, fetch, register_asset

# ---------------------------------------------------------------------------------------------------------------
# Model sizes
# ---------------------------------------------------------------------------------------------------------------

# What all four released sizes share; the book's GPT_CONFIG_124M differs in two places: OpenAI trained with a
# 1,024-token context and with biases on the query/key/value projections.
GPT2_BASE_CONFIG = {
    "vocab_size": 50257,     # GPT-2's BPE vocabulary
    "context_length": 1024,  # the positional embedding table has 1,024 rows
    "drop_rate": 0.0,        # no dropout when we only run the model
    "qkv_bias": True,        # OpenAI's c_attn has a bias
}

# Per size: width, depth and heads (the head size is 64 in every one). This is the project's one table of the
# four sizes: flops.GPT2_SIZES (chapter 4's names) and the pretrain command derive from it.
GPT2_MODEL_CONFIGS = {
    "124M": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "355M": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "774M": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "1558M": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
}

# The book names the sizes "gpt2-small (124M)" etc. (chapter 4's exercise, chapter 5's model_configs).
GPT2_BOOK_NAMES = {
    "124M": "gpt2-small (124M)",
    "355M": "gpt2-medium (355M)",
    "774M": "gpt2-large (774M)",
    "1558M": "gpt2-xl (1558M)",
}

# The hub repositories of the four sizes.
_HUB_REPOS = {
    "124M": "openai-community/gpt2",
    "355M": "openai-community/gpt2-medium",
    "774M": "openai-community/gpt2-large",
    "1558M": "openai-community/gpt2-xl",
}


def gpt2_config(model_size: str) -> dict:
    """Return the full ``GPTModel`` configuration for an OpenAI GPT-2 size ("124M", "355M", "774M", "1558M")."""
    if model_size not in GPT2_MODEL_CONFIGS:
        raise ValueError(f"unknown GPT-2 size {model_size!r}; choose one of {', '.join(GPT2_MODEL_CONFIGS)}")
    return {**GPT2_BASE_CONFIG, **GPT2_MODEL_CONFIGS[model_size]}


# ---------------------------------------------------------------------------------------------------------------
# The checkpoint files, registered with the data layer
# ---------------------------------------------------------------------------------------------------------------

# sha256 = the Hub's Git LFS object id of each file, as the Hub's file pages show it. Sizes are given where a
# byte-exact figure was published; where it was not, the data layer checks the checksum alone. For 774M and
# 1558M the Hub's file pages list these object ids with rounded sizes only (3.25 GB, 6.43 GB).
_CHECKSUMS = {
    "124M": ("248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707", 548_105_171),
    "355M": ("fc5a354a19255ad494f3d71549390baca1ccf61d1d822b9408971705c687c9cd", 1_519_984_962),
    "774M": ("5f47f3e12f91cd33b662ce7e433b6150ad5512b5884a2cee961b50e9c3bbebce", None),
    "1558M": ("0f8b28eb05a8075f48b61b6f35332978c74fc7763fa9fb4051a1c30511736a6a", None),
}


def gpt2_asset_name(model_size: str) -> str:
    """The data-layer name of a size's checkpoint, e.g. ``"gpt2-124M-safetensors"``."""
    gpt2_config(model_size)  # validates the size
    return f"gpt2-{model_size}-safetensors"


for _size, (_sha, _bytes) in _CHECKSUMS.items():
    register_asset(Asset(
        name=f"gpt2-{_size}-safetensors",
        filename=f"gpt2/{_size}/model.safetensors",
        urls=(f"https://huggingface.co/{_HUB_REPOS[_size]}/resolve/main/model.safetensors",),
        sha256=_sha,
        size=_bytes,
        license="MIT (openai/gpt-2)",
        description=f"OpenAI GPT-2 {_size} weights as safetensors ({_HUB_REPOS[_size]})",
    ))


def load_gpt2_params(model_size: str) -> dict[str, torch.Tensor]:
    """Fetch the safetensors file of an OpenAI GPT-2 size and return its state dict (float32 CPU tensors)."""
    from safetensors.torch import load_file

    return load_file(str(fetch(gpt2_asset_name(model_size))))


# ---------------------------------------------------------------------------------------------------------------
# Mapping GPT-2's tensor names onto GPTModel's
# ---------------------------------------------------------------------------------------------------------------

class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit a model: a tensor is missing, left over, or has the wrong shape."""


# OpenAI implemented every linear layer as a "Conv1D" that stores its weight as (in, out) and computes x @ W + b.
# nn.Linear stores (out, in), so these four weights, and only these, are transposed on the way in.
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

# Whole-model tensors: checkpoint name -> GPTModel name.
_GLOBAL_MAP = {
    "wte.weight": "tok_emb.weight",
    "wpe.weight": "pos_emb.weight",
    "ln_f.weight": "final_norm.scale",
    "ln_f.bias": "final_norm.shift",
}

# Per-block tensors (``h.{i}.`` in the checkpoint, ``trf_blocks.{i}.`` in GPTModel). c_attn is split below.
_BLOCK_MAP = {
    "ln_1.weight": "norm1.scale",
    "ln_1.bias": "norm1.shift",
    "ln_2.weight": "norm2.scale",
    "ln_2.bias": "norm2.shift",
    "attn.c_proj.weight": "att.out_proj.weight",
    "attn.c_proj.bias": "att.out_proj.bias",
    "mlp.c_fc.weight": "ff.layers.0.weight",
    "mlp.c_fc.bias": "ff.layers.0.bias",
    "mlp.c_proj.weight": "ff.layers.2.weight",
    "mlp.c_proj.bias": "ff.layers.2.bias",
}

# c_attn packs the query, key and value projections side by side along its output dimension: [q | k | v].
_QKV_TARGETS = ("att.W_query", "att.W_key", "att.W_value")

# Buffers some files carry that hold no learned values (the causal mask), so nothing needs them.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")

# Prefixes that wrap the same tensors: transformers' save_pretrained writes "transformer.", torch.compile
# prefixes module names with "_orig_mod.".
_PREFIXES = ("_orig_mod.", "transformer.")


def _normalize(params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip layout prefixes and drop the causal-mask buffers, so both hub and save_pretrained files look alike."""
    out: dict[str, torch.Tensor] = {}
    for key, value in params.items():
        name = key
        for prefix in _PREFIXES:
            name = name.removeprefix(prefix)
        if name.startswith("h.") and name.endswith(_IGNORED_SUFFIXES) and name.count(".") == 3:
            continue
        if name in out:
            raise CheckpointMismatchError(f"checkpoint holds {name!r} twice (as {key!r} and another prefix)")
        out[name] = value
    return out


def _convert(params: dict[str, torch.Tensor]) -> dict[str, tuple[str, torch.Tensor]]:
    """Turn a normalized GPT-2 state dict into {GPTModel name: (source name, tensor)}, transposes applied."""
    converted: dict[str, tuple[str, torch.Tensor]] = {}
    for name, tensor in params.items():
        if name in _GLOBAL_MAP:
            converted[_GLOBAL_MAP[name]] = (name, tensor)
            continue
        if name == "lm_head.weight":
            converted["out_head.weight"] = (name, tensor)
            continue
        parts = name.split(".", 2)  # "h", "3", "attn.c_attn.weight"
        if len(parts) != 3 or parts[0] != "h" or not parts[1].isdigit():
            converted[f"<unused>{name}"] = (name, tensor)
            continue
        block, suffix = parts[1], parts[2]
        if suffix in CONV1D_WEIGHTS:
            tensor = tensor.T
        if suffix in ("attn.c_attn.weight", "attn.c_attn.bias"):
            kind = suffix.rsplit(".", 1)[1]
            # weight after the transpose: (3 * emb_dim, emb_dim); bias: (3 * emb_dim,)
            if tensor.shape[0] % 3 != 0:
                raise CheckpointMismatchError(
                    f"{name}: shape {tuple(params[name].shape)} cannot hold [query | key | value] in equal parts"
                )
            for target, part in zip(_QKV_TARGETS, torch.chunk(tensor, 3, dim=0)):
                converted[f"trf_blocks.{block}.{target}.{kind}"] = (name, part)
        elif suffix in _BLOCK_MAP:
            converted[f"trf_blocks.{block}.{_BLOCK_MAP[suffix]}"] = (name, tensor)
        else:
            converted[f"<unused>{name}"] = (name, tensor)
    # GPT-2 ties its output head to the token embedding; files usually omit lm_head.weight for that reason.
    if "out_head.weight" not in converted and "tok_emb.weight" in converted:
        converted["out_head.weight"] = converted["tok_emb.weight"]
    return converted


def load_weights_into_gpt(gpt: nn.Module, params: Mapping[str, torch.Tensor]) -> nn.Module:
    """Copy a GPT-2 state dict (hub layout or ``save_pretrained`` layout) into a ``GPTModel``, in place.

    Checks coverage both ways and every shape before copying anything, so a failed load leaves ``gpt`` as it
    was. Tensors are copied into the model's existing parameters, keeping their dtype and device.
    """
    converted = _convert(_normalize(params))
    targets = dict(gpt.named_parameters())

    unused = sorted({src for key, (src, _) in converted.items() if key not in targets})  # c_attn maps to 3 keys
    missing = sorted(key for key in targets if key not in converted)
    problems = []
    if missing:
        problems.append(f"model parameters with no tensor in the checkpoint: {', '.join(missing)}")
    if unused:
        problems.append(f"checkpoint tensors the model has no place for: {', '.join(unused)}")
    for key, (src, tensor) in converted.items():
        if key in targets and tuple(tensor.shape) != tuple(targets[key].shape):
            expected = tuple(targets[key].shape)
            note = " (after the Conv1D transpose)" if src.split(".", 2)[-1] in CONV1D_WEIGHTS else ""
            problems.append(
                f"{src} -> {key}: checkpoint shape {tuple(tensor.shape)}{note}, model shape {expected}"
            )
    if problems:
        hint = (
            "Build the model with the configuration that matches the checkpoint "
            "(gpt2_config(size) for OpenAI's files; note qkv_bias=True and context_length=1024)."
        )
        raise CheckpointMismatchError("the checkpoint does not fit the model:\n  " + "\n  ".join(problems) + f"\n{hint}")

    with torch.no_grad():
        for key, (_, tensor) in converted.items():
            targets[key].copy_(tensor)
    return gpt
