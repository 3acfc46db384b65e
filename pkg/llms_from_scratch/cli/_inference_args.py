"""``--quantize`` for the commands that run a zoo model (generate, chat, serve), the loading it selects, and the
memory line that ``generate --benchmark`` prints. Not a command itself.

* ``--quantize`` left out: a GGUF file keeps its own formats (Q8_0, Q4_0, Q4_1 stay quantized, see
  ``models/gguf_quantized.py``); any other model loads in float as before.
* ``--quantize none``: every model loads in float (a GGUF file is dequantized).
* ``--quantize int8`` / ``int4``: linear layers in 8 bits per output channel or 4 bits in groups of 32; the
  output head in 8 bits. A GGUF file is converted one matrix at a time; a float checkpoint is loaded, then
  quantized.
* ``--quantize int8-dynamic``: the int8 weights, and decode steps may quantize the activations to 8 bits too
  (W8A8: int8 x int8 products) where that is measured faster here; float32 activations on the CPU only.
* ``--checkpoint`` / ``--gpt2`` (the book's ``GPTModel``): ``int8`` and ``int4`` quantize its linear layers and
  head (:func:`quantize_book_model`); chapter 5's ``generate`` recomputes the whole sequence every step, so the
  layers take their plain path (less memory, not more speed).

With ``--dtype auto`` the quantized products may run on bfloat16 activations where that is measured faster on
this machine (norms, attention and the KV cache stay float32); ``--dtype float32`` keeps every product in
float32, ``--dtype bfloat16`` runs the whole model in bfloat16.

``--compile`` (any model, CPU or GPU) compiles the decode step with TorchInductor (``nn/compiled_decoding.py``): a
one-off cost of seconds to minutes, printed to stderr with the step times it measured; the compiled step is kept
only where it was faster than the plain one.
"""

from __future__ import annotations

import argparse
from functools import lru_cache
from pathlib import Path
from typing import Any

QUANTIZE = ("none", "int8", "int8-dynamic", "int4")


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--quantize`` (the other model options come from ``zoo.add_model_arguments``)."""
    parser.add_argument("--quantize", choices=QUANTIZE, default=None,
                        help="weights in memory: int8 or int4 quantize the linear layers, none loads float weights; "
                             "int8-dynamic: int8, and decoding may quantize the activations to 8 bits too where "
                             "faster (other numbers than int8); default: a .gguf model keeps the formats its file "
                             "stores (Q8_0/Q4_0/Q4_1 stay quantized), other models load in float")
    parser.add_argument("--compile", action="store_true",
                        help="compile the decode step with TorchInductor (takes a while once; kept only where "
                             "measured faster than the plain step)")


def load_for_inference(args: argparse.Namespace, device: Any, dtype: Any) -> tuple[Any, Any]:
    """Model and tokenizer for ``args.model`` as ``--quantize``, ``--dtype``, ``--no-autotune`` and ``--compile``
    ask."""
    model, tokenizer = _load(args, device, dtype)
    if getattr(args, "compile", False):
        model = _compiled(model, _cache_length(args, tokenizer))
    return model, tokenizer


def _cache_length(args: argparse.Namespace, tokenizer: Any) -> int | None:
    """The cache slots ``generate`` will allocate (prompt plus new tokens); None for chat and serve, whose
    requests vary (the race then uses its default)."""
    prompt, new_tokens = getattr(args, "prompt", None), getattr(args, "max_new_tokens", None)
    if prompt is None or new_tokens is None:
        return None
    return len(tokenizer.encode(prompt)) + 1 + int(new_tokens)  # + 1: a BOS token some chat formats add


def _compiled(model: Any, max_length: int | None) -> Any:
    """``model`` with its decode step compiled where faster (``--compile``); says on stderr what that cost."""
    import sys

    from ..nn.compiled_decoding import compile_for_decoding

    print("compiling the decode step (once per process) ...", file=sys.stderr, flush=True)
    fast, report = compile_for_decoding(model, max_length=max_length)
    print(f"compiled in {report.compile_s:.1f} s; decode step {report.compiled_step_s * 1e3:.1f} ms compiled, "
          f"{report.plain_step_s * 1e3:.1f} ms plain: using the {report.chosen} step", file=sys.stderr)
    return fast


def _load(args: argparse.Namespace, device: Any, dtype: Any) -> tuple[Any, Any]:
    from .zoo import load_model_and_tokenizer

    source = _gguf_source(args.model)
    scheme = getattr(args, "quantize", None)
    if scheme is None:
        scheme = "gguf" if source is not None else "none"
    if scheme == "none":
        return load_model_and_tokenizer(args.model, device, dtype, not args.no_autotune)
    bf16_allowed = getattr(args, "dtype", "auto") == "auto"
    dynamic = scheme == "int8-dynamic"
    if dynamic:
        _check_dynamic(device, dtype)
    return _load_quantized(args.model, str(source) if source else None, "int8" if dynamic else scheme, device,
                           dtype, not args.no_autotune, bf16_allowed, dynamic)


def _check_dynamic(device: Any, dtype: Any) -> None:
    import torch

    from .errors import UsageError

    if torch.device(device).type != "cpu" or dtype != torch.float32:
        raise UsageError("--quantize int8-dynamic quantizes float32 activations on the CPU: use --device cpu with "
                         "--dtype float32 or auto, or --quantize int8")


def check_book_quantize(scheme: str | None, compile_step: bool = False) -> None:
    """Refuse a ``--quantize`` value (or ``--compile``) that the book's ``GPTModel`` cannot use (before its
    weights load)."""
    from .errors import UsageError

    if scheme == "int8-dynamic":
        raise UsageError("--quantize int8-dynamic needs one-token decode steps, which chapter 5's generate does not "
                         "take with --checkpoint/--gpt2: use --quantize int8")
    if compile_step:
        raise UsageError("--compile compiles one-token decode steps with a KV cache, which chapter 5's generate "
                         "does not take with --checkpoint/--gpt2: leave --compile out")


def quantize_book_model(model: Any, scheme: str | None) -> Any:
    """The book's ``GPTModel`` (``--checkpoint`` / ``--gpt2``) with ``--quantize`` applied: linear layers and head
    in ``int8`` or ``int4`` (the head in int8), plain path; ``None`` and ``"none"`` leave it as it is."""
    check_book_quantize(scheme)
    if scheme in (None, "none"):
        return model
    from ..quant import QuantizedLinear, quantize_model

    model = quantize_model(model, scheme, kernel="plain")  # each step multiplies the whole sequence: no kernel
    model.out_head = QuantizedLinear.from_linear(model.out_head, "int8")
    return model


def _gguf_source(model: str) -> Path | None:
    """The GGUF file behind ``model`` (a path, or a registry name whose checkpoint is one), else None."""
    from ..models import PRETRAINED, resolve

    if model in PRETRAINED:
        fmt, path = resolve(model) if PRETRAINED[model].fmt == "gguf" else (None, None)
        return path if fmt == "gguf" else None
    return Path(model) if Path(model).suffix == ".gguf" else None


@lru_cache(maxsize=1)
def _load_quantized(model: str, gguf_path: str | None, scheme: str, device: Any, dtype: Any, autotune: bool,
                    bf16_allowed: bool, dynamic: bool = False) -> tuple[Any, Any]:
    """Load and quantize (the last model stays loaded, as ``zoo.load_model_and_tokenizer`` keeps its own)."""
    import torch

    from ..models.gguf_quantized import load_gguf_quantized
    from ..quant import QuantizedLinear, choose_stacking, quantize_model
    from ..tokenizers import gguf_tokenizer
    from .zoo import load_model_and_tokenizer

    on_cpu = torch.device(device).type == "cpu"
    activations = (torch.bfloat16,) if bf16_allowed and on_cpu and dtype == torch.float32 else ()
    if dynamic:
        activations += (torch.int8,)  # int8 x int8 products quantizing the activations (quant.kernels)
    kernel = "auto" if autotune and on_cpu else "plain"
    if gguf_path is not None:
        loaded = load_gguf_quantized(gguf_path, scheme, dtype=dtype, device=device, kernel=kernel,
                                     activations=activations)
        return loaded.eval(), gguf_tokenizer(gguf_path)
    # the uncached loader: the cached one keeps its model for later calls, which must not see it quantized
    loaded, tokenizer = load_model_and_tokenizer.__wrapped__(model, device, dtype, False)
    loaded = quantize_model(loaded, scheme, kernel="plain")
    if isinstance(getattr(loaded, "out_head", None), torch.nn.Linear):  # the head in 8 bits, as for GGUF files
        loaded.out_head = QuantizedLinear.from_linear(loaded.out_head, "int8")
    if kernel == "auto":
        loaded = choose_stacking(loaded, 1, dtype, activations)
    return loaded.eval(), tokenizer


def memory_line(model: Any) -> str:
    """What ``generate --benchmark`` prints after generating: the bytes the model's weights occupy and the
    process's resident memory now and at its peak."""
    import resource
    import sys

    tensors = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
               for t in [*model.parameters(), *model.buffers()] if t.numel()}
    weights = sum(tensors.values()) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    now = _resident_mib()
    resident = f"{now:.0f} MiB resident now, " if now is not None else ""
    return f"memory: weights {weights:.1f} MiB; process {resident}{peak:.0f} MiB at its peak"


def _resident_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return None
