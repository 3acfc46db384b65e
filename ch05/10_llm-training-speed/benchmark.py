"""Training speed of the book's GPTModel against transformers' GPT2LMHeadModel, and of speed-up levers.

Each case is one full training step (forward, cross-entropy, backward, AdamW step) on random token batches.
Cases are measured alternately (A B A B ...) in one process, so that drifting machine load affects all of
them alike; the table reports tokens per second (median and range over rounds) and the ratio to the first case.

    python benchmark.py                                  # eager fp32 and bf16 autocast, ours vs transformers
    python benchmark.py --cases ours-fp32 ours-fused ours-compile ours-bf16 ours-all --plot speed.png
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from llms_from_scratch.ch04 import GPTModel
from llms_from_scratch.gpt2_weights import load_weights_into_gpt

CFG = {"vocab_size": 50257, "context_length": 256, "emb_dim": 384, "n_heads": 6, "n_layers": 6, "drop_rate": 0.0,
       "qkv_bias": True}
CASES = ("ours-fp32", "hf-fp32", "ours-bf16", "hf-bf16", "ours-fused", "ours-compile", "hf-compile", "ours-all")


def build(case: str, device: torch.device):
    """Return a ``step(x, y)`` closure for one case; both models start from the same weights."""
    import transformers

    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=CFG["n_layers"], n_embd=CFG["emb_dim"], n_head=CFG["n_heads"], n_positions=CFG["context_length"],
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )).to(device)
    if case.startswith("hf"):
        model = hf

        def forward(m, x):
            return m(x).logits
    else:
        model = load_weights_into_gpt(GPTModel(CFG), hf.state_dict()).to(device)

        def forward(m, x):
            return m(x)
    fused = case in ("ours-fused", "ours-all")
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1, fused=fused)
    bf16 = case.endswith("bf16") or case == "ours-all"
    compiled = case.endswith("compile") or case == "ours-all"

    def loss_fn(x, y):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = forward(model, x)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten())

    loss_fn = torch.compile(loss_fn) if compiled else loss_fn

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(x, y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["ours-fp32", "hf-fp32", "ours-bf16", "hf-bf16"], choices=CASES)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per case before the first round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--plot", help="save a bar chart of tokens/s here")
    args = parser.parse_args()

    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, CFG["vocab_size"], (args.batch_size, CFG["context_length"]), generator=g).to(device)
    y = torch.randint(0, CFG["vocab_size"], (args.batch_size, CFG["context_length"]), generator=g).to(device)
    steps = {case: build(case, device) for case in args.cases}
    for step in steps.values():
        for _ in range(args.warmup):
            step(x, y)
    rates: dict[str, list[float]] = {case: [] for case in args.cases}
    for _ in range(args.rounds):
        for case, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates[case].append(args.steps * x.numel() / (time.perf_counter() - start))

    base = statistics.median(rates[args.cases[0]])
    print(f"device {device.type}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size} x {CFG['context_length']}, {CFG['n_layers']} layers x {CFG['emb_dim']} wide")
    print(f"{'case':<14}{'tokens/s (median)':>18}{'min-max':>18}{'vs ' + args.cases[0]:>16}")
    for case, values in rates.items():
        med = statistics.median(values)
        print(f"{case:<14}{med:>18,.0f}{f'{min(values):,.0f}-{max(values):,.0f}':>18}{med / base:>15.2f}x")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(list(rates), [statistics.median(v) for v in rates.values()])
        ax.set_ylabel("Training tokens / s")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
