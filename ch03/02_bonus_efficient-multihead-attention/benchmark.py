"""Time the multi-head attention variants against chapter 3's MultiHeadAttention, in one process.

    python benchmark.py                       # GPT-2-small attention: batch 4, 1,024 tokens, 768 dims, 12 heads
    python benchmark.py --batch-size 2 --num-tokens 256 --repeats 3
    python benchmark.py --threads 1           # one CPU thread: steadier on a shared machine
    python benchmark.py --device cuda         # where a GPU is available

All variants hold the same weights (copied from one MultiHeadAttention). Each repeat times every variant once, in
turn (A B C ... A B C ...), so slow phases of a busy machine hit all of them alike; the table reports the median
and the range, and the speed of each variant as a ratio to MultiHeadAttention measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from llms_from_scratch.attention_variants import VARIANTS
from llms_from_scratch.ch03 import MultiHeadAttention

PEER = "MultiHeadAttention"
LABELS = {
    PEER: "MultiHeadAttention (chapter 3)",
    "wrapper": "wrapper of single heads",
    "combined_qkv": "combined QKV",
    "einsum": "einsum",
    "pytorch_sdpa": "scaled_dot_product_attention",
    "pytorch_class": "nn.MultiheadAttention",
}


def build_modules(emb_dim: int, num_tokens: int, num_heads: int, device: str) -> dict[str, torch.nn.Module]:
    torch.manual_seed(123)
    mha = MultiHeadAttention(emb_dim, emb_dim, num_tokens, dropout=0.0, num_heads=num_heads)
    modules = {PEER: mha}
    for name, cls in VARIANTS.items():
        modules[name] = cls(emb_dim, emb_dim, num_tokens, dropout=0.0, num_heads=num_heads).load_mha_weights(mha)
    return {name: m.to(device) for name, m in modules.items()}


def _timer(device: str) -> Callable[[Callable[[], None]], float]:
    def time_once(fn: Callable[[], None]) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return time_once


def run_benchmark(
    batch_size: int = 4, num_tokens: int = 1024, emb_dim: int = 768, num_heads: int = 12, repeats: int = 5,
    device: str = "cpu", threads: int | None = None,
) -> list[dict]:
    """Return one row per module and mode ("forward", "forward+backward") with times in milliseconds.

    ``threads`` sets the number of CPU threads for the run (restored afterwards); None keeps PyTorch's default.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(batch_size, num_tokens, emb_dim, num_heads, repeats, device)
    finally:
        torch.set_num_threads(before)


def _run(batch_size: int, num_tokens: int, emb_dim: int, num_heads: int, repeats: int, device: str) -> list[dict]:
    modules = build_modules(emb_dim, num_tokens, num_heads, device)
    x = torch.randn(batch_size, num_tokens, emb_dim, device=device)
    time_once = _timer(device)

    with torch.no_grad():  # the variants really are the same function on these weights
        ref = modules[PEER](x)
        for name, m in modules.items():
            torch.testing.assert_close(m(x), ref, rtol=1e-4, atol=1e-4, msg=lambda s, n=name: f"{n}: {s}")

    def forward(m):
        def fn():
            with torch.no_grad():
                m(x)
        return fn

    def forward_backward(m):
        def fn():
            m.zero_grad(set_to_none=True)
            m(x).sum().backward()
        return fn

    rows = []
    for mode, make in (("forward", forward), ("forward+backward", forward_backward)):
        fns = {name: make(m) for name, m in modules.items()}
        for fn in fns.values():  # warm-up: allocator, kernel selection
            fn()
        times = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                times[name].append(time_once(fn) * 1e3)
        peer = statistics.median(times[PEER])
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append({"mode": mode, "name": name, "label": LABELS[name], "median_ms": med, "min_ms": min(ts),
                         "max_ms": max(ts), "speedup": peer / med})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'mode':<18}{'implementation':<32}{'median ms':>11}{'min-max ms':>18}{'speed vs MHA':>14}"]
    for r in rows:
        span = f"{r['min_ms']:.1f}-{r['max_ms']:.1f}"
        lines.append(f"{r['mode']:<18}{r['label']:<32}{r['median_ms']:>11.1f}{span:>18}{r['speedup']:>13.2f}x")
    return "\n".join(lines)


def describe_setup(device: str, threads: int | None = None) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threads = threads or torch.get_num_threads()
    where = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU, {threads} thread(s)"
    return f"torch {torch.__version__}, {where}, float32; 1-minute load average {load:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--num-tokens", type=int, default=1024)
    parser.add_argument("--emb-dim", type=int, default=768)
    parser.add_argument("--num-heads", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    args = parser.parse_args(argv)
    print(describe_setup(args.device, args.threads))
    rows = run_benchmark(args.batch_size, args.num_tokens, args.emb_dim, args.num_heads, args.repeats, args.device,
                         args.threads)
    print(format_rows(rows))


if __name__ == "__main__":
    main()
