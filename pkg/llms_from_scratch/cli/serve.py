"""``llms-from-scratch serve -m MODEL --port N``: an OpenAI-compatible chat server for an instruct model, with a
chat page at ``/``.

``--checkpoint FILE`` serves one of the book's own models instead of ``-m``: a chapter 5 pretraining checkpoint
(the page continues text), a chapter 6 classifier (the page labels messages through ``POST /v1/classify``) or a
chapter 7 instruction model (the page chats in the prompt layout it was trained on, ``--prompt-style``).

The server runs on Starlette and uvicorn, the package's ``serve`` extra; without them the command says how to
install them and exits with status 1 (``--help`` works either way).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

API_KEY_ENV = "LLMS_SERVE_API_KEY"


def register(subparsers) -> None:
    from ._inference_args import add_inference_arguments
    from .errors import non_negative_int, positive_int
    from .zoo import add_model_arguments

    parser = subparsers.add_parser("serve", help="serve a model with the OpenAI chat API and a chat page at /")
    add_model_arguments(parser)
    add_inference_arguments(parser)  # --quantize
    book = parser.add_argument_group("the book's own checkpoints (instead of -m)")
    book.add_argument("--checkpoint", default=None,
                      help="a checkpoint.pth from `pretrain` (chapter 5), or the .safetensors file from "
                           "`finetune-classifier` (chapter 6) or `finetune-instruct` (chapter 7)")
    book.add_argument("--prompt-style", default="alpaca", choices=["alpaca", "phi3"],
                      help="the prompt layout a chapter 7 model was fine-tuned on (default alpaca)")
    book.add_argument("--n-heads", type=positive_int, default=None,
                      help="attention heads of a .safetensors model that is neither a GPT-2 size nor the quick "
                           "stand-in (its file does not record them)")
    book.add_argument("--max-length", type=positive_int, default=None,
                      help="a classifier's input length: the longest training message in tokens, as chapter 6 "
                           "pads to it (default: the model's context)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=non_negative_int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--name", default=None,
                        help="model id clients send (default: the -m name, or the file or folder name of a path)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="PyTorch CPU threads (default: PyTorch's choice, one per core); 1 or 2 keeps a "
                             "server started next to a notebook or a training run from competing for every core")
    parser.add_argument("--api-key", default=None,
                        help=f"require 'Authorization: Bearer KEY' on every request (or set ${API_KEY_ENV}, "
                             "which keeps the key out of the process list)")
    parser.add_argument("--allow-special-tokens", action="store_true",
                        help="encode special-token strings in messages (<|im_end|>, ...) as control tokens; by "
                             "default they are plain text, so that a user cannot forge a system turn")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-tokens", type=positive_int, default=2048,
                        help="the longest reply a request may ask for (default 2048)")
    limits.add_argument("--max-waiting", type=non_negative_int, default=16,
                        help="requests that may wait while one generates; the next gets a 503 (default 16)")
    limits.add_argument("--max-connections", type=positive_int, default=64,
                        help="open connections; a request on one more gets a 503 (default 64)")
    limits.add_argument("--header-timeout", type=_seconds, default=10.0,
                        help="seconds for a request's headers to arrive (default 10)")
    limits.add_argument("--body-timeout", type=_seconds, default=30.0,
                        help="seconds for a request's body to arrive once its headers are in (default 30)")
    parser.set_defaults(func=_run)


def _seconds(text: str) -> float:
    import argparse
    import math

    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


def model_id(model: str) -> str:
    """The id a model is served under: a registry name as it is, a file or folder by its name without the
    path (``/models/SmolLM2-135M-Instruct.Q4_1.gguf`` is ``SmolLM2-135M-Instruct.Q4_1``), so that the server
    does not show where its files are."""
    path = Path(model)
    if path.suffix in (".gguf", ".pth", ".safetensors"):
        return path.stem
    if len(path.parts) > 1 or path.is_dir():
        return path.resolve().name
    return model


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any address
        return False


def _run(args) -> int:
    from .errors import CommandError

    try:  # before the model loads: the missing extra is reported at once
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise CommandError('the server needs Starlette and uvicorn: pip install "llms-from-scratch[serve]"') from None
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if api_key is None and not _is_loopback(args.host):
        print(f"warning: serving on {args.host} without --api-key: anyone who can reach this port can use the "
              "model; pass --api-key (or bind 127.0.0.1)", file=sys.stderr, flush=True)

    import torch

    from ..serving.limits import ServerLimits
    from ..serving.server import make_server
    from ._inference_args import load_for_inference
    from .zoo import resolve_device

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    name = args.name or model_id(args.checkpoint or args.model)
    limits = ServerLimits(max_tokens=args.max_tokens, max_waiting=args.max_waiting,
                          max_connections=args.max_connections, header_timeout=args.header_timeout,
                          body_timeout=args.body_timeout)
    device, dtype = resolve_device(args.device, args.dtype)
    if args.checkpoint:
        server = _book_server(args, name, device, dtype, api_key, limits)
    else:
        model, tokenizer = load_for_inference(args, device, dtype)
        server = make_server(model, tokenizer, name, args.host, args.port, api_key=api_key, limits=limits,
                             allow_special_tokens=args.allow_special_tokens)  # errors: see cli.errors
    host, port = server.server_address[:2]
    host = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
    print(f"serving {name} at http://{host}:{port}/v1 (Ctrl+C stops)", flush=True)
    print(f"chat page: http://{host}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _book_server(args, name: str, device, dtype, api_key: str | None, limits):
    """A server for ``--checkpoint``: the classifier's routes for chapter 6, the chat routes otherwise."""
    from ..ch06 import CLASS_NAMES
    from ..serving.book_models import CONTINUE, BookChatTokenizer, decoder_from_gpt
    from ..serving.classifier import ClassifierService
    from ..serving.server import make_classifier_server, make_server
    from ._book_checkpoints import load_book_checkpoint
    from .errors import UsageError

    if args.quantize not in (None, "none"):
        raise UsageError("--quantize applies to -m models; serve a --checkpoint in float (leave --quantize out)")
    loaded = load_book_checkpoint(args.checkpoint, args.n_heads)
    model = loaded.model.to(device=device, dtype=dtype)
    if loaded.kind == "classifier":
        n_classes = model.out_head.weight.shape[0]
        labels = CLASS_NAMES if n_classes == len(CLASS_NAMES) else tuple(f"class {i}" for i in range(n_classes))
        try:
            classifier = ClassifierService(model, loaded.tokenizer, name, labels, args.max_length)
        except ValueError as exc:
            raise UsageError(str(exc).replace("max_length", "--max-length")) from None
        return make_classifier_server(classifier, args.host, args.port, api_key=api_key, limits=limits)
    layout = CONTINUE if loaded.kind == "pretrained" else args.prompt_style
    tokenizer = BookChatTokenizer(layout, loaded.tokenizer)
    return make_server(decoder_from_gpt(model), tokenizer, name, args.host, args.port, api_key=api_key,
                       limits=limits, allow_special_tokens=args.allow_special_tokens)
