"""``llms-from-scratch serve -m MODEL --port N``: an OpenAI-compatible chat server for an instruct model."""

from __future__ import annotations


def register(subparsers) -> None:
    from .errors import non_negative_int, positive_int
    from .zoo import add_model_arguments

    parser = subparsers.add_parser("serve", help="serve an instruct model with the OpenAI chat API")
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=non_negative_int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--name", default=None, help="model id clients send (default: the -m value)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="PyTorch CPU threads (default: PyTorch's choice, one per core); 1 or 2 keeps a "
                             "server started next to a notebook or a training run from competing for every core")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    import torch

    from ..serving.server import make_server
    from .zoo import load_model_and_tokenizer, resolve_device

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device, dtype = resolve_device(args.device, args.dtype)
    model, tokenizer = load_model_and_tokenizer(args.model, device, dtype, not args.no_autotune)
    server = make_server(model, tokenizer, args.name or args.model, args.host, args.port)  # errors: see cli.errors
    host, port = server.server_address[:2]
    print(f"serving {args.name or args.model} at http://{host}:{port}/v1 (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
