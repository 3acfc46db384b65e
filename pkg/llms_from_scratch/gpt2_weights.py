"""OpenAI's GPT-2 weights in the book's ``GPTModel``, read from Hugging Face safetensors files (no TensorFlow).

The four released sizes live on the Hugging Face hub as ``openai-community/gpt2`` (-medium, -large, -xl). Each
repository holds one ``model.safetensors`` whose tensors use GPT-2's original names (``h.0.attn.c_attn.weight``).
The data layer fetches such a file (checksum, cache, mirror, progress bar). Three ways to read it:

- :func:`load_gpt2_params` returns its flat state dict of torch tensors;
- :func:`download_and_load_gpt2` returns the book's ``(settings, params)`` pair, ``params`` being the nested dict
  of numpy arrays chapter 5 builds (``params["blocks"][0]["attn"]["c_attn"]["w"]``);
- :func:`load_gpt2_params_from_tf_ckpt` builds the same nested dict from OpenAI's original TensorFlow files.

:func:`load_weights_into_gpt` copies either form into a ``GPTModel`` through the family's one weight map
(:data:`llms_from_scratch.models.gpt2.BOOK_WEIGHT_MAP`). The copy is strict in both directions: every model
parameter must receive a tensor, every checkpoint tensor must be used, and every shape must match. Anything else
raises a :class:`CheckpointMismatchError` that names the tensor, so a wrong model size or a ``qkv_bias=False``
model fails loudly instead of producing gibberish.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import Asset, fetch_asset, get_asset, gpt2_asset_name
from .gpt2_sizes import GPT2_BOOK_NAMES, GPT2_HEAD_DIM, GPT2_MODEL_CONFIGS, GPT2_MODEL_SIZES
from .models.config import ModelConfig
from .models.gpt2 import BOOK_WEIGHT_MAP, WEIGHT_MAP, make_config
from .models.weights import WeightMismatchError, convert_to_ours
from .tf_checkpoint import read_tf_checkpoint

__all__ = [
    "CONV1D_WEIGHTS",
    "GPT2_BASE_CONFIG",
    "GPT2_BOOK_NAMES",
    "GPT2_MODEL_CONFIGS",
    "GPT2_MODEL_SIZES",
    "CheckpointMismatchError",
    "book_params_to_state_dict",
    "download_and_load_gpt2",
    "gpt2_asset",
    "gpt2_asset_name",
    "gpt2_config",
    "load_gpt2_params",
    "load_gpt2_params_from_tf_ckpt",
    "load_weights_into_gpt",
    "state_dict_to_book_params",
]

# ---------------------------------------------------------------------------------------------------------------
# Model sizes (the table itself lives in gpt2_sizes.py)
# ---------------------------------------------------------------------------------------------------------------

# What all four released sizes share; the book's GPT_CONFIG_124M differs in two places: OpenAI trained with a
# 1,024-token context and with biases on the query/key/value projections.
GPT2_BASE_CONFIG = {
    "vocab_size": 50257,     # GPT-2's BPE vocabulary
    "context_length": 1024,  # the positional embedding table has 1,024 rows
    "drop_rate": 0.0,        # no dropout when we only run the model
    "qkv_bias": True,        # OpenAI's c_attn has a bias
}

_BY_BOOK_NAME = {book: size for size, book in GPT2_BOOK_NAMES.items()}


def gpt2_config(model_size: str, **overrides: Any) -> dict:
    """The ``GPTModel`` configuration that fits OpenAI's weights of one GPT-2 size.

    ``model_size`` is "124M", "355M", "774M" or "1558M", or the book's name of a size ("gpt2-small (124M)").
    ``overrides`` replace entries, e.g. ``gpt2_config("124M", drop_rate=0.1)`` for fine-tuning.
    """
    size = _BY_BOOK_NAME.get(model_size, model_size)
    if size not in GPT2_MODEL_CONFIGS:
        names = ", ".join([*GPT2_MODEL_SIZES, *map(repr, _BY_BOOK_NAME)])
        raise ValueError(f"unknown GPT-2 size {model_size!r}; choose one of {names}")
    return {**GPT2_BASE_CONFIG, **GPT2_MODEL_CONFIGS[size], **overrides}


# ---------------------------------------------------------------------------------------------------------------
# The checkpoint files (listed, with their checksums, in the data layer's table: data/assets.py)
# ---------------------------------------------------------------------------------------------------------------

def gpt2_asset(model_size: str) -> Asset:
    """The registered safetensors checkpoint of a size: its file name, URL, checksum and licence."""
    return get_asset(gpt2_asset_name(model_size))


def load_gpt2_params(model_size: str) -> dict[str, torch.Tensor]:
    """Fetch the safetensors file of an OpenAI GPT-2 size and return its state dict (float32 CPU tensors)."""
    from safetensors.torch import load_file

    return load_file(str(fetch_asset(gpt2_asset(model_size))))


# ---------------------------------------------------------------------------------------------------------------
# The book's nested params dict <-> GPT-2's flat tensor names
# ---------------------------------------------------------------------------------------------------------------

# OpenAI named a linear layer's weight "w" and a LayerNorm's scale "g" (gain); both are "weight" in the flat names.
_FLAT_LEAF = {"w": "weight", "g": "weight", "b": "bias"}
# Prefixes that wrap the same tensors: transformers' save_pretrained writes "transformer.", torch.compile
# prefixes module names with "_orig_mod.".
_PREFIXES = ("transformer.", "_orig_mod.", "_orig_mod.transformer.")


def book_params_to_state_dict(params: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Flatten the book's nested dict into GPT-2's names: ``blocks[3]["ln_1"]["g"]`` -> ``h.3.ln_1.weight``.

    Keys the book's layout does not have are passed through unchanged, so the loader can name them.
    """
    state: dict[str, torch.Tensor] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping):
                walk(value, f"{prefix}{key}.")
            else:
                state[f"{prefix}{_FLAT_LEAF.get(key, key)}"] = torch.as_tensor(value)

    for key, value in params.items():
        if key == "blocks":
            for i, block in enumerate(value):
                walk(block, f"h.{i}.")
        elif key in ("wte", "wpe"):
            state[f"{key}.weight"] = torch.as_tensor(value)
        elif key in ("g", "b"):  # the final LayerNorm sits at the top level of the book's dict
            state[f"ln_f.{_FLAT_LEAF[key]}"] = torch.as_tensor(value)
        else:
            state[key] = torch.as_tensor(value)
    return state


def state_dict_to_book_params(state: Mapping[str, Any]) -> dict[str, Any]:
    """Nest a GPT-2 state dict the book's way, as numpy arrays: ``h.3.ln_1.weight`` -> ``blocks[3]["ln_1"]["g"]``.

    The causal-mask buffers some files carry are dropped, and so is ``lm_head.weight`` when it equals the token
    embedding (GPT-2 ties them; the book's dict has no place for a separate head).
    """
    params: dict[str, Any] = {"blocks": []}
    head = None
    for key, value in state.items():
        name = key.removeprefix("_orig_mod.").removeprefix("transformer.")
        array = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        parts = name.split(".")
        if WEIGHT_MAP.is_ignored(name):
            continue
        if name == "lm_head.weight":
            head = array
        elif name in ("wte.weight", "wpe.weight"):
            params[parts[0]] = array
        elif name in ("ln_f.weight", "ln_f.bias"):
            params["g" if parts[1] == "weight" else "b"] = array
        elif len(parts) >= 4 and parts[0] == "h" and parts[1].isdigit() and parts[-1] in ("weight", "bias"):
            layer = int(parts[1])
            params["blocks"].extend({} for _ in range(layer + 1 - len(params["blocks"])))
            node = params["blocks"][layer]
            for part in parts[2:-1]:
                node = node.setdefault(part, {})
            leaf = "b" if parts[-1] == "bias" else ("g" if parts[-2].startswith("ln_") else "w")
            node[leaf] = array
        else:
            raise CheckpointMismatchError(f"{key!r} is not a GPT-2 tensor name (expected names like 'h.0.ln_1.weight')")
    if head is not None and not np.array_equal(head, params.get("wte")):
        raise CheckpointMismatchError("lm_head.weight differs from wte.weight: not GPT-2's tied output head")
    return params


# ---------------------------------------------------------------------------------------------------------------
# Loading into GPTModel: the family's weight map, with chapter 4's parameter names
# ---------------------------------------------------------------------------------------------------------------

# One error class for every checkpoint that does not fit its model; the book-facing name is an alias.
CheckpointMismatchError = WeightMismatchError

# OpenAI implemented every linear layer as a "Conv1D" that stores its weight as (in, out) and computes x @ W + b.
# nn.Linear stores (out, in), so these four weights, and only these, are transposed on the way in.
CONV1D_WEIGHTS = tuple(name.removeprefix("h.{}.") for name, entry in WEIGHT_MAP.entries.items() if entry.transpose)

_HINT = ("Build the model with the configuration that matches the checkpoint "
         "(gpt2_config(size) for OpenAI's files; note qkv_bias=True and context_length=1024).")


def _config_of(gpt: nn.Module) -> ModelConfig:
    """The weight map's view of a ``GPTModel``: its depth (which layers to expect) and its sizes (for messages)."""
    vocab_size, emb_dim = gpt.tok_emb.weight.shape
    n_heads = getattr(gpt.trf_blocks[0].att, "num_heads", 1) if len(gpt.trf_blocks) else 1
    return make_config(emb_dim, len(gpt.trf_blocks), n_heads, vocab_size=vocab_size,
                       context_length=gpt.pos_emb.weight.shape[0])


def load_weights_into_gpt(gpt: nn.Module, params: Mapping[str, Any]) -> nn.Module:
    """Copy GPT-2's weights into a ``GPTModel`` in place, and return it.

    ``params`` is the book's nested dict (from :func:`download_and_load_gpt2` or
    :func:`load_gpt2_params_from_tf_ckpt`) or a flat state dict in the hub's or ``save_pretrained``'s layout.
    Everything is checked before anything is copied, so a failed load leaves ``gpt`` as it was. Values are copied
    into the model's existing parameters, keeping their dtype and device.
    """
    state = book_params_to_state_dict(params) if "blocks" in params else params
    targets = dict(gpt.named_parameters())
    try:
        tensors = convert_to_ours(
            list(state), lambda name: torch.as_tensor(state[name]), BOOK_WEIGHT_MAP, _config_of(gpt),
            {name: p.shape for name, p in targets.items()}, strip_prefixes=_PREFIXES,
            optional=("out_head.weight",),
            fresh=True,  # every tensor is copied into a parameter below, so none needs its own memory first
        )
    except WeightMismatchError as exc:
        raise CheckpointMismatchError(f"{exc}\n{_HINT}") from None
    # GPT-2 ties its output head to the token embedding; files usually leave lm_head.weight out for that reason
    if "out_head.weight" in targets and "out_head.weight" not in tensors:
        tensors["out_head.weight"] = tensors["tok_emb.weight"]
    with torch.no_grad():
        for name, tensor in tensors.items():
            targets[name].copy_(tensor)
    return gpt


# ---------------------------------------------------------------------------------------------------------------
# The book's entry points
# ---------------------------------------------------------------------------------------------------------------

def _settings_of(params: Mapping[str, Any]) -> dict[str, int]:
    """GPT-2's ``hparams.json`` for a nested params dict; heads are 64 wide at every size."""
    n_vocab, n_embd = params["wte"].shape
    if n_embd % GPT2_HEAD_DIM:
        raise CheckpointMismatchError(f"wte is {n_embd} wide, not a multiple of GPT-2's head size {GPT2_HEAD_DIM}")
    return {"n_vocab": int(n_vocab), "n_ctx": int(params["wpe"].shape[0]), "n_embd": int(n_embd),
            "n_head": int(n_embd) // GPT2_HEAD_DIM, "n_layer": len(params["blocks"])}


def download_and_load_gpt2(model_size: str, models_dir: str | os.PathLike) -> tuple[dict, dict]:
    """OpenAI's GPT-2 as the book's ``(settings, params)`` pair.

    ``settings`` is GPT-2's ``hparams.json`` (``n_vocab``, ``n_ctx``, ``n_embd``, ``n_head``, ``n_layer``);
    ``params`` is the nested dict of numpy arrays that :func:`load_weights_into_gpt` reads.

    The book downloads OpenAI's TensorFlow checkpoint into ``models_dir/model_size`` and reads it with TensorFlow.
    Here the same weights come from the size's safetensors file, fetched by the data layer: checked against its
    sha256 and kept once, in the data cache (or read in place from ``$LLMS_DATA_MIRROR``), for every chapter and
    every ``models_dir``. ``models_dir/model_size`` receives ``hparams.json``, the settings file of the book's
    download. For OpenAI's original files, see :func:`load_gpt2_params_from_tf_ckpt`.
    """
    if model_size not in GPT2_MODEL_SIZES:
        raise ValueError(f"Model size not in {GPT2_MODEL_SIZES}: got {model_size!r}")
    from safetensors.numpy import load_file

    params = state_dict_to_book_params(load_file(str(fetch_asset(gpt2_asset(model_size)))))
    settings = _settings_of(params)
    model_dir = Path(models_dir) / model_size
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "hparams.json").write_text(json.dumps(settings) + "\n", encoding="utf-8")
    return settings, params


def load_gpt2_params_from_tf_ckpt(ckpt_path: str | os.PathLike, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The book's nested params dict from OpenAI's TensorFlow checkpoint (no TensorFlow needed).

    ``ckpt_path`` is the checkpoint prefix (``"gpt2/124M/model.ckpt"``, what ``tf.train.latest_checkpoint``
    returns), its ``.index`` file or the folder holding it; ``settings`` is the ``hparams.json`` dict. Variables
    are named ``model/h3/ln_1/g``: the layer becomes ``params["blocks"][3]``, the rest nested keys, and size-1
    dimensions are squeezed away (OpenAI stored the Conv1D weights as (1, in, out)).
    """
    params: dict[str, Any] = {"blocks": [{} for _ in range(settings["n_layer"])]}
    for name, array in read_tf_checkpoint(ckpt_path).items():
        if not name.startswith("model/"):
            continue  # outside the model's scope: step counters or optimizer slots, which inference does not use
        parts = name.split("/")[1:]
        node = params
        if parts[0][:1] == "h" and parts[0][1:].isdigit():
            layer = int(parts[0][1:])
            if layer >= len(params["blocks"]):
                raise CheckpointMismatchError(f"{name}: layer {layer}, but settings['n_layer'] is {settings['n_layer']}")
            node = params["blocks"][layer]
        for key in parts[1:-1]:
            node = node.setdefault(key, {})
        node[parts[-1]] = np.squeeze(array)
    return params
