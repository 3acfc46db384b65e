"""``llms-from-scratch generate``: continue a prompt with a pretrained checkpoint or an OpenAI GPT-2 size.

Sources are separate functions returning ``(model, tokenizer)`` so that more model families can be added here.
"""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate text with a zoo model (-m, default SmolLM2-135M-Instruct), a pretrain checkpoint or GPT-2",
        description="Continue a prompt. By default a model-zoo model (-m NAME, a .gguf file or a Hugging Face folder); "
                    "with --checkpoint a checkpoint written by `llms-from-scratch pretrain`; with --gpt2 one of "
                    "OpenAI's GPT-2 sizes loaded into the chapter-4 GPTModel.",
    )
    from ..generation import add_generate_arguments

    add_generate_arguments(parser)  # -p/--prompt, -m/--model, --device, --dtype, sampling, --stream, --benchmark
    book = parser.add_mutually_exclusive_group()
    book.add_argument("--checkpoint", help="a checkpoint.pth written by `llms-from-scratch pretrain`")
    book.add_argument("--gpt2", choices=["124M", "355M", "774M", "1558M"], help="OpenAI's GPT-2 weights (chapter 5)")
    parser.set_defaults(func=run)


def load_from_checkpoint(path: str):
    import torch

    from ..ch04 import GPTModel
    from ..checkpoints import load_checkpoint
    from ..data import gpt2_encoding

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "config" not in checkpoint:
        raise ValueError(f"{path} holds no model config; pass a checkpoint written by `llms-from-scratch pretrain`")
    model = GPTModel(checkpoint["config"])
    load_checkpoint(path, model)
    return model, gpt2_encoding()


def load_gpt2(size: str):
    from ..ch04 import GPTModel
    from ..data import gpt2_encoding
    from ..gpt2_weights import gpt2_config, load_gpt2_params, load_weights_into_gpt

    model = GPTModel(gpt2_config(size))
    load_weights_into_gpt(model, load_gpt2_params(size))
    return model, gpt2_encoding()


def run(args) -> int:
    if not (args.checkpoint or args.gpt2):
        from ..generation import cli_generate

        return cli_generate(args)
    return run_book_model(args)


def run_book_model(args) -> int:
    """Generate with the chapter-4 ``GPTModel`` and chapter 5's ``generate``."""
    import torch

    from ..ch05 import generate, text_to_token_ids, token_ids_to_text
    from ..data import AssetUnavailableError

    try:
        model, tokenizer = load_from_checkpoint(args.checkpoint) if args.checkpoint else load_gpt2(args.gpt2)
    except (FileNotFoundError, AssetUnavailableError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    device = "cpu" if args.device == "auto" else args.device
    model.to(device).eval()
    torch.manual_seed(123 if args.seed is None else args.seed)
    idx = text_to_token_ids(args.prompt, tokenizer).to(device)
    out = generate(model, idx, args.max_new_tokens, model.pos_emb.num_embeddings, temperature=args.temperature,
                   top_k=args.top_k, eos_id=tokenizer.eot_token, top_p=args.top_p)
    print(token_ids_to_text(out.cpu(), tokenizer))
    return 0
