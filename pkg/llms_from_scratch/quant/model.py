"""Quantizing a whole model by module surgery: every selected ``nn.Linear`` is replaced by a new
:class:`~.linear.QuantizedLinear` built from its weight (as appendix E's ``replace_linear_with_lora`` wraps them).

Embeddings are not linear layers and stay as they are. The output head (a linear layer named ``out_head`` or
``lm_head``) is left in full precision unless ``head=True``: it is the layer most sensitive to rounding, and
in models that tie it to the token embedding it shares that matrix, which would then be stored twice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch
from torch import nn

from .linear import QuantizedLinear
from .schemes import check_scheme
from .tuning import choose_kernels

HEAD_NAMES = ("out_head", "lm_head")


def selected_linears(model: nn.Module, head: bool = False) -> Iterator[tuple[str, nn.Linear]]:
    """(qualified name, layer) of every ``nn.Linear`` that :func:`quantize_model` would replace."""
    for name, module in model.named_modules():
        if type(module) is nn.Linear and (head or name.rsplit(".", 1)[-1] not in HEAD_NAMES):
            yield name, module


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule called ``name`` (e.g. ``"trf_blocks.0.att.W_query"``) was."""
    parent_name, _, child_name = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child_name, new)


def replace_linears(model: nn.Module, build: Callable[[str, nn.Linear], nn.Module], head: bool = False) -> nn.Module:
    """Replace each selected linear layer ``child`` of ``model`` by ``build(qualified_name, child)``."""
    for name, linear in list(selected_linears(model, head)):
        replace_module(model, name, build(name, linear))
    return model


@torch.no_grad()
def quantize_model(model: nn.Module, scheme: str, group_size: int | None = None, *, symmetric: bool | None = None,
                   head: bool = False, kernel: str = "auto", rows: int = 1,
                   activations: tuple[torch.dtype, ...] = ()) -> nn.Module:
    """Replace ``model``'s linear layers by round-to-nearest quantized ones; returns ``model``.

    ``scheme``: ``"int8"`` (per output channel unless ``group_size`` is given), ``"int4"`` (groups of 32 by
    default), or a GGUF block format ``"q8_0"``, ``"q4_0"``, ``"q4_1"``. ``kernel="auto"`` measures PyTorch's
    quantized kernels against the plain dequantize-then-matmul path for inputs of ``rows`` rows (the decode batch
    size) and keeps whichever is fastest here (:func:`~.kernels.choose_kernels`); ``kernel="plain"`` skips that.
    ``activations`` is passed on to it: ``(torch.int8,)`` also lets int8 layers quantize their activations on the
    fly (W8A8) where that is faster, ``(torch.bfloat16,)`` lets products run on bfloat16 activations.
    """
    check_scheme(scheme, group_size)
    if kernel not in ("auto", "plain"):
        raise ValueError(f"kernel must be 'auto' or 'plain', got {kernel!r}")
    replace_linears(model, lambda name, linear: QuantizedLinear.from_linear(linear, scheme, group_size, symmetric),
                    head)
    if kernel == "auto":
        choose_kernels(model, rows=rows, activations=activations)
    return model


@torch.no_grad()
def dequantized_copy(model: nn.Module) -> nn.Module:
    """A copy of a quantized model with every :class:`~.linear.QuantizedLinear` turned back into an
    ``nn.Linear`` holding the dequantized weight: the same numbers, computed by plain float32 layers."""
    clone = copy.deepcopy(model)
    for name, module in list(clone.named_modules()):
        if isinstance(module, QuantizedLinear):
            linear = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                               device=module.codes.device)
            linear.weight.copy_(module.dequantize())
            if module.bias is not None:
                linear.bias.copy_(module.bias.float())
            replace_module(clone, name, linear)
    return clone
