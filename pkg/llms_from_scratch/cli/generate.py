"""``llms-from-scratch generate``: continue a prompt with a pretrained checkpoint or an OpenAI GPT-2 size.

Sources are separate functions returning ``(model, tokenizer)`` so that more model families can be added here.
"""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="generate text from a checkpoint or an OpenAI GPT-2 size")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint.pth written by `llms-from-scratch pretrain`")
    source.add_argument("--gpt2", choices=["124M", "355M", "774M", "1558M"], help="OpenAI's GPT-2 weights")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--device", default="cpu")
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
    import torch

    from ..ch05 import generate, text_to_token_ids, token_ids_to_text
    from ..data import AssetUnavailableError

    try:
        model, tokenizer = load_from_checkpoint(args.checkpoint) if args.checkpoint else load_gpt2(args.gpt2)
    except (FileNotFoundError, AssetUnavailableError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    model.to(args.device).eval()
    torch.manual_seed(args.seed)
    idx = text_to_token_ids(args.prompt, tokenizer).to(args.device)
    out = generate(model, idx, args.max_new_tokens, model.pos_emb.num_embeddings, temperature=args.temperature,
                   top_k=args.top_k, eos_id=tokenizer.eot_token, top_p=args.top_p)
    print(token_ids_to_text(out.cpu(), tokenizer))
    return 0
