"""Chapter 4 end to end: build the GPT model, report its size, and generate text greedily from a prompt.

    python gpt.py                                   # GPT-2 124M architecture, random weights
    python gpt.py --prompt "Every effort moves you" --max-new-tokens 20

The weights are random (training is chapter 5), so the continuation is gibberish; what this script shows is that
the pieces fit: tokenizer -> GPTModel -> generate_text_simple -> tokenizer. Quick mode (LLMS_QUICK=1) keeps the
124M shapes but builds only 2 of the 12 blocks.
"""

from __future__ import annotations

import argparse

import tiktoken
import torch

from llms_from_scratch.ch04 import GPT_CONFIG_124M, GPTModel, generate_text_simple
from llms_from_scratch.settings import pick, quick_mode


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", default="Hello, I am", help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=10, help="number of tokens to generate")
    parser.add_argument("--seed", type=int, default=123, help="seed for the random weights")
    args = parser.parse_args(argv)

    quick_mode()
    cfg = {**GPT_CONFIG_124M, "n_layers": pick(quick=2, full=GPT_CONFIG_124M["n_layers"])}
    torch.manual_seed(args.seed)
    model = GPTModel(cfg).eval()  # eval: no dropout, so greedy decoding is deterministic

    total = sum(p.numel() for p in model.parameters())
    tied = total - model.out_head.weight.numel()
    print(f"GPTModel: {cfg['n_layers']} blocks, {total:,} parameters ({tied:,} with a tied output head), "
          f"{total * 4 / 1024**2:.1f} MB in float32")

    tokenizer = tiktoken.get_encoding("gpt2")
    encoded = torch.tensor(tokenizer.encode(args.prompt)).unsqueeze(0)  # (1, num_tokens)
    out = generate_text_simple(model, encoded, max_new_tokens=args.max_new_tokens,
                               context_size=cfg["context_length"])
    text = tokenizer.decode(out.squeeze(0).tolist())
    print(f"input tokens:  {encoded.squeeze(0).tolist()}")
    print(f"output tokens: {out.squeeze(0).tolist()}")
    print(f"output text:   {text!r}")
    return text


if __name__ == "__main__":
    main()
