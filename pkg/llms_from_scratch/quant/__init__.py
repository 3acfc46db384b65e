"""Quantization from scratch: weights as small integers plus a few floats per group.

* :func:`quantize_weight` / :func:`dequantize`: one matrix, by name of scheme (``"int8"``, ``"int4"``, and GGUF's
  block formats ``"q8_0"``, ``"q4_0"``, ``"q4_1"``, bit for bit as llama.cpp writes them);
* :class:`QuantizedLinear`: a linear layer that keeps its weight quantized, with PyTorch's int8/int4 kernels where
  they agree with the plain path and are faster on the running machine (:func:`choose_kernels`);
* :func:`quantize_model`: module surgery replacing a model's linear layers (round-to-nearest);
  :func:`gptq_quantize_model`: the same with GPTQ's error-compensating updates, from calibration text;
* for decoding: :class:`QuantizedEmbedding` (a token table kept quantized), :func:`requantize` (another scheme,
  a slice of rows at a time), :func:`stack_projections` / :func:`choose_stacking` (query/key/value and gate/up as
  one product), products on bfloat16 activations (``choose_kernels(..., activations=(torch.bfloat16,))``) and,
  opt-in, int8 x int8 products that quantize the activations too (``activations=(torch.int8,)``, W8A8).
  ``models.gguf_quantized.load_gguf_quantized`` builds a model from a GGUF file with all of these.

>>> model = quantize_model(model, "int8")                 # per-channel absmax, PyTorch's int8 kernel if faster
>>> model = quantize_model(model, "int4", group_size=128)
"""

from .blocks import BITS_PER_WEIGHT, FORMATS, from_gguf_bytes, quantize_block_format, round_half_away, to_gguf_bytes
from .embedding import QuantizedEmbedding
from .fusion import choose_stacking, stack_projections
from .gptq import HessianAccumulator, gptq_quantize, gptq_quantize_model
from .grid import Grid
from .int4 import quantize_int4
from .int8 import quantize_int8
from .kernels import KERNELS, PLAIN, kernel_candidates, set_kernel
from .linear import QuantizedLinear
from .model import dequantized_copy, quantize_model, replace_linears, selected_linears
from .requantize import requantize
from .rtn import PER_CHANNEL, quantize_rtn
from .schemes import SCHEMES, quantize_weight
from .tuning import choose_kernels
from .weight import QuantizedWeight, dequantize, pack_int4, stack_rows, unpack_int4

__all__ = [
    "BITS_PER_WEIGHT",
    "FORMATS",
    "KERNELS",
    "PER_CHANNEL",
    "PLAIN",
    "SCHEMES",
    "Grid",
    "HessianAccumulator",
    "QuantizedEmbedding",
    "QuantizedLinear",
    "QuantizedWeight",
    "choose_kernels",
    "choose_stacking",
    "dequantize",
    "dequantized_copy",
    "from_gguf_bytes",
    "gptq_quantize",
    "gptq_quantize_model",
    "kernel_candidates",
    "pack_int4",
    "quantize_block_format",
    "quantize_int4",
    "quantize_int8",
    "quantize_model",
    "quantize_rtn",
    "quantize_weight",
    "replace_linears",
    "requantize",
    "round_half_away",
    "selected_linears",
    "set_kernel",
    "stack_projections",
    "stack_rows",
    "to_gguf_bytes",
    "unpack_int4",
]
