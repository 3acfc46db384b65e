"""Chapter 4's ``GPTModel`` as a ``transformers`` ``GPT2LMHeadModel`` and back, so that a Hugging Face trainer
(TRL's PPO and GRPO trainers) can start from exactly the model our recipes start from, and its result can be
measured with our evaluation code.

The two architectures are the same network: learned positions, pre-norm blocks, LayerNorm with eps 1e-5,
tanh-GELU MLP. Two differences are bridged here:

- the book's model may have no query/key/value bias (``qkv_bias=False``), while GPT-2's ``c_attn`` always has
  one: it is exported as zeros, and whoever trains the Hugging Face model must keep it frozen at zero
  (:func:`absent_qkv_bias_names` names those parameters), or the result no longer fits the book's model;
- the book's output head is its own matrix, so the exported config unties it (``tie_word_embeddings=False``).

The tensor names and transposes come from the GPT-2 family's one weight map (``models.gpt2.BOOK_WEIGHT_MAP``).
:func:`hf_gpt2_model` and :func:`hf_addition_tokenizer` build the ``transformers`` objects (imported only there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from ..gpt2_weights import load_weights_into_gpt
from ..models.gpt2 import BOOK_WEIGHT_MAP, make_config
from ..models.weights import convert_to_hf
from .addition import AdditionTokenizer

_BODY_PREFIX = "transformer."  # GPT2LMHeadModel keeps everything but lm_head under "transformer."
_HEAD = "lm_head.weight"


def hf_gpt2_config(cfg: Mapping[str, Any], *, eos_token_id: int, pad_token_id: int,
                   bos_token_id: int | None = None) -> dict[str, Any]:
    """Keyword arguments of ``transformers.GPT2Config`` for a ``GPTModel`` configuration dict.

    The special-token ids are the task tokenizer's; ``bos_token_id`` defaults to ``eos_token_id`` as in GPT-2.
    """
    return {
        "vocab_size": cfg["vocab_size"], "n_positions": cfg["context_length"], "n_embd": cfg["emb_dim"],
        "n_layer": cfg["n_layers"], "n_head": cfg["n_heads"], "n_inner": 4 * cfg["emb_dim"],
        "activation_function": "gelu_new",  # the tanh approximation, chapter 4's GELU
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": cfg["drop_rate"], "embd_pdrop": cfg["drop_rate"], "attn_pdrop": cfg["drop_rate"],
        "tie_word_embeddings": False,  # GPTModel's out_head is a separate matrix
        "bos_token_id": eos_token_id if bos_token_id is None else bos_token_id,
        "eos_token_id": eos_token_id, "pad_token_id": pad_token_id,
    }


def _map_config(gpt: nn.Module):
    vocab_size, emb_dim = gpt.tok_emb.weight.shape
    return make_config(emb_dim, len(gpt.trf_blocks), gpt.trf_blocks[0].att.num_heads, vocab_size=vocab_size,
                       context_length=gpt.pos_emb.weight.shape[0])


def gpt_to_hf_state(gpt: nn.Module) -> dict[str, torch.Tensor]:
    """``GPT2LMHeadModel`` state dict of a ``GPTModel`` (detached CPU copies); a missing qkv bias becomes zeros."""
    state = {k: v.detach().to("cpu") for k, v in gpt.state_dict().items()}
    tensors = convert_to_hf(state, BOOK_WEIGHT_MAP, _map_config(gpt))
    emb_dim = gpt.tok_emb.weight.shape[1]
    for layer in range(len(gpt.trf_blocks)):
        tensors.setdefault(f"h.{layer}.attn.c_attn.bias", torch.zeros(3 * emb_dim))
    return {(name if name == _HEAD else _BODY_PREFIX + name): t.clone() for name, t in tensors.items()}


def absent_qkv_bias_names(gpt: nn.Module) -> list[str]:
    """The ``GPT2LMHeadModel`` parameters that must stay zero (and frozen) for ``gpt``: its ``c_attn`` biases when
    the book's model has none, else an empty list."""
    if gpt.trf_blocks[0].att.W_query.bias is not None:
        return []
    return [f"{_BODY_PREFIX}h.{layer}.attn.c_attn.bias" for layer in range(len(gpt.trf_blocks))]


def load_hf_state_into_gpt(gpt: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Copy a ``GPT2LMHeadModel`` state dict into ``gpt`` in place (strict, every shape checked) and return it.

    When ``gpt`` has no qkv bias, the checkpoint's ``c_attn`` biases must be zero: a trained, non-zero bias has no
    place in the book's model, and dropping it would change the network silently.
    """
    state = {k: v.detach().to("cpu") for k, v in state.items()}
    for name in absent_qkv_bias_names(gpt):
        bias = state.pop(name, None)
        if bias is not None and bool(bias.any()):
            raise ValueError(f"{name} is not zero, but the GPTModel has qkv_bias=False; freeze that bias while "
                             "training the Hugging Face model, or build the GPTModel with qkv_bias=True")
    return load_weights_into_gpt(gpt, state)


def hf_gpt2_model(gpt: nn.Module, cfg: Mapping[str, Any], *, eos_token_id: int, pad_token_id: int,
                  sequence_classification: bool = False) -> nn.Module:
    """A ``transformers`` ``GPT2LMHeadModel`` with ``gpt``'s weights (``cfg`` is its configuration dict), its
    absent qkv biases frozen at zero; with ``sequence_classification`` a ``GPT2ForSequenceClassification`` of one
    output (the value model of TRL's PPO) whose body holds ``gpt``'s weights and whose ``score`` head is new."""
    import transformers

    config = transformers.GPT2Config(**hf_gpt2_config(cfg, eos_token_id=eos_token_id, pad_token_id=pad_token_id))
    state = gpt_to_hf_state(gpt)
    if sequence_classification:
        config.num_labels = 1
        model = transformers.GPT2ForSequenceClassification(config)
        state.pop(_HEAD)
        model.load_state_dict(state, strict=False)  # everything but the new score head
        missing = {name for name, _ in model.named_parameters()} - state.keys()
        if missing != {"score.weight"}:
            raise ValueError(f"GPT2ForSequenceClassification left parameters unset: {sorted(missing)}")
    else:
        model = transformers.GPT2LMHeadModel(config)
        model.load_state_dict(state, strict=True)
    parameters = dict(model.named_parameters())
    for name in absent_qkv_bias_names(gpt):
        parameters[name].requires_grad_(False)
    if not sequence_classification:
        model.generation_config.eos_token_id = eos_token_id
        model.generation_config.pad_token_id = pad_token_id
    return model.eval()


def hf_addition_tokenizer(tokenizer: AdditionTokenizer):
    """The addition task's character tokenizer as a ``transformers`` fast tokenizer with the same ids: one token
    per character, ``<eos>`` and ``<pad>`` as special tokens, prompts padded on the left."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    eos, pad = "<eos>", "<pad>"
    vocab = {**tokenizer.stoi, eos: tokenizer.eos_token_id, pad: tokenizer.pad_token_id}
    core = Tokenizer(models.WordLevel(vocab, unk_token=pad))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one piece per character
    core.decoder = decoders.Fuse()  # "5", "7" -> "57", no spaces in between
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=eos, pad_token=pad, padding_side="left")
