"""``llms-from-scratch generate``: continue a prompt with a zoo model, a pretrained checkpoint or an OpenAI GPT-2 size.

Sources are separate functions returning ``(model, tokenizer)`` so that more model families can be added here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..gpt2_sizes import GPT2_MODEL_SIZES  # the one table of sizes; it imports no torch
from ._inference_args import (
    add_inference_arguments,
    check_book_quantize,
    load_for_inference,
    memory_line,
    quantize_book_model,
)
from .errors import CommandError, UsageError, one_line, refused_pickle
from .zoo import add_model_arguments, add_sampling_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate text with a zoo model (-m, default SmolLM2-135M-Instruct), a pretrain checkpoint or GPT-2",
        description="Continue a prompt. By default a model-zoo model (-m NAME, a .gguf file or a Hugging Face folder); "
                    "with --checkpoint a checkpoint written by `llms-from-scratch pretrain`; with --gpt2 one of "
                    "OpenAI's GPT-2 sizes loaded into the chapter-4 GPTModel.",
    )
    add_generate_arguments(parser)
    book = parser.add_mutually_exclusive_group()
    book.add_argument("--checkpoint", help="a checkpoint.pth written by `llms-from-scratch pretrain`")
    book.add_argument("--gpt2", choices=GPT2_MODEL_SIZES, help="OpenAI's GPT-2 weights (chapter 5)")
    parser.set_defaults(func=run)


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``generate`` for zoo models: -p/--prompt, -m/--model, --device, --dtype, sampling, --stream,
    --benchmark (see :func:`cli_generate`)."""
    parser.add_argument("-p", "--prompt", required=True, help="the prompt (instruct models get their chat format)")
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    parser.add_argument("--benchmark", action="store_true", help="print tokens/second to stderr")
    add_inference_arguments(parser)  # --quantize


def run(args) -> int:
    if not (args.checkpoint or args.gpt2):
        return cli_generate(args)
    return run_book_model(args)


def cli_generate(args: argparse.Namespace) -> int:
    """``llms-from-scratch generate -m MODEL -p PROMPT``: print the generated text to stdout."""
    from .zoo import prompt_ids, resolve_device, sampling_from_args

    sampling = sampling_from_args(args)  # before torch is imported: a wrong value is reported at once
    import time

    import torch

    from ..serving.generation import TextStream, stream

    device, dtype = resolve_device(args.device, args.dtype)
    model, tokenizer = load_for_inference(args, device, dtype)
    ids = prompt_ids(tokenizer, [{"role": "user", "content": args.prompt}])
    check_prompt_length(model, len(ids), args.max_new_tokens)
    ids = torch.tensor([ids], device=device)
    text_stream = TextStream(tokenizer)
    n_new = 0
    start = time.perf_counter()
    for token in stream(model, ids, args.max_new_tokens, sampling, eos_ids=tokenizer.eos_ids):
        token_id = int(token[0])
        if token_id in tokenizer.eos_ids:
            break
        n_new += 1
        piece = text_stream.push(token_id)
        if args.stream and piece:
            print(piece, end="", flush=True)
    elapsed = time.perf_counter() - start
    if args.stream:
        print()
    else:
        print(tokenizer.decode(text_stream.ids, skip_special=True))
    if args.benchmark:
        print(f"{n_new} tokens in {elapsed:.2f} s: {n_new / elapsed:.1f} tokens/s "
              f"(prompt {ids.shape[1]} tokens, {device.type}, {str(dtype).removeprefix('torch.')})", file=sys.stderr)
        print(memory_line(model), file=sys.stderr)
    return 0


def check_prompt_length(model, prompt_tokens: int, max_new_tokens: int) -> None:
    """The prompt (``prompt_tokens`` long once encoded) and ``--max-new-tokens`` must fit into the model's context;
    a prompt the model adds no start token to may not be empty. Both are usage errors."""
    from ..serving.sampling import ContextLengthError, check_context

    if prompt_tokens == 0:
        raise UsageError("--prompt is empty and this model adds no start token to it: give some text")
    try:
        check_context(model, prompt_tokens, max_new_tokens)
    except ContextLengthError as exc:
        raise UsageError(str(exc).replace("max_new_tokens=", "--max-new-tokens ")) from None


def load_from_checkpoint(path: str):
    import pickle

    import torch

    from ..data import gpt2_encoding
    from ..training.checkpoints import CheckpointError, load_model_state_dict, verify_checksum
    from ..training.moe_gpt import build_gpt

    if not Path(path).is_file():
        raise CommandError(f"checkpoint {path} does not exist: pass the checkpoint.pth that "
                           "`llms-from-scratch pretrain --out-dir DIR` wrote into DIR")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused an object that is not a tensor
        raise CommandError(f"{path}: {refused_pickle(exc)}") from None
    except (RuntimeError, EOFError) as exc:  # torch's zip reader on a truncated or damaged file
        reason = one_line(str(exc)).split(". ")[0]  # torch goes on for four more sentences
        raise CommandError(f"{path} is not a readable PyTorch checkpoint (truncated or damaged: {reason}); "
                           "write it again with `llms-from-scratch pretrain`") from None
    try:
        checkpoint = verify_checksum(checkpoint, path)  # the file is read once; its checksum is checked here
    except CheckpointError as exc:
        raise CommandError(str(exc)) from None
    if not isinstance(checkpoint, dict) or "config" not in checkpoint or "model" not in checkpoint:
        raise CommandError(f"{path} holds no model config; pass a checkpoint written by `llms-from-scratch pretrain`")
    model = build_gpt(checkpoint["config"])  # chapter 4's GPT, with MoE blocks if `pretrain --moe` trained it
    load_model_state_dict(model, checkpoint["model"])
    return model, gpt2_encoding()


def load_gpt2(size: str):
    from ..ch04 import GPTModel
    from ..data import gpt2_encoding
    from ..gpt2_weights import gpt2_config, load_gpt2_params, load_weights_into_gpt

    model = GPTModel(gpt2_config(size))
    load_weights_into_gpt(model, load_gpt2_params(size))
    return model, gpt2_encoding()


def run_book_model(args: argparse.Namespace) -> int:
    """Generate with the chapter-4 ``GPTModel`` and chapter 5's ``generate``."""
    from .zoo import resolve_device, sampling_from_args

    sampling_from_args(args)  # the same checks as for zoo models (chapter 5's generate has no seed argument)
    import torch

    from ..ch05 import generate, text_to_token_ids, token_ids_to_text

    device, dtype = resolve_device(args.device, args.dtype)
    check_book_quantize(args.quantize, getattr(args, "compile", False))
    model, tokenizer = load_from_checkpoint(args.checkpoint) if args.checkpoint else load_gpt2(args.gpt2)
    model = quantize_book_model(model, args.quantize)
    model.to(device=device, dtype=dtype).eval()
    torch.manual_seed(123 if args.seed is None else args.seed)
    idx = text_to_token_ids(args.prompt, tokenizer).to(device)
    if idx.shape[1] == 0:
        raise UsageError("--prompt is empty: give some text for the model to continue")
    out = generate(model, idx, args.max_new_tokens, model.pos_emb.num_embeddings, temperature=args.temperature,
                   top_k=args.top_k, eos_id=tokenizer.eot_token, top_p=args.top_p)
    print(token_ids_to_text(out.cpu(), tokenizer))
    return 0
