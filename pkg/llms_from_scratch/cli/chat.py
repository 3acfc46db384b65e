"""``llms-from-scratch chat``: a multi-turn conversation with an instruct model in the terminal."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    from ._inference_args import add_inference_arguments
    from .zoo import add_model_arguments, add_sampling_arguments

    parser = subparsers.add_parser("chat", help="talk to an instruct model (multi-turn; /reset, /exit)")
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    add_inference_arguments(parser)  # --quantize
    parser.add_argument("--system", default=None, help="a system message that starts the conversation")
    parser.add_argument("--allow-special-tokens", action="store_true",
                        help="encode special-token strings you type (<|im_end|>, ...) as control tokens; by default "
                             "they are plain text")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    import torch

    from ..serving.generation import TextStream, stream
    from ._inference_args import load_for_inference
    from .errors import CommandError
    from .zoo import resolve_device, sampling_from_args

    sampling = sampling_from_args(args)
    device, dtype = resolve_device(args.device, args.dtype)
    model, tokenizer = load_for_inference(args, device, dtype)
    if getattr(tokenizer, "chat_format", None) is None:
        raise CommandError(f"{args.model} is a base model without a chat format; use `generate` instead")
    start = [{"role": "system", "content": args.system}] if args.system else []
    messages = list(start)
    # one generator for the whole conversation: a seeded chat is reproducible, yet each turn draws fresh numbers
    generator = torch.Generator(device=device).manual_seed(sampling.seed) if sampling.seed is not None else None
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or line.strip() == "/exit":
            return 0
        if line.strip() == "/reset":
            messages = list(start)
            continue
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line.rstrip("\n")})
        prompt = tokenizer.encode_chat(messages, allow_special_in_content=args.allow_special_tokens)
        ids = torch.tensor([prompt], device=device)
        text = TextStream(tokenizer)
        if interactive:
            print("model> ", end="", flush=True)
        for token in stream(model, ids, args.max_new_tokens, sampling, eos_ids=tokenizer.eos_ids, generator=generator):
            if int(token[0]) in tokenizer.eos_ids:
                break
            print(text.push(int(token[0])), end="", flush=True)
        print()
        messages.append({"role": "assistant", "content": tokenizer.decode(text.ids, skip_special=True)})
