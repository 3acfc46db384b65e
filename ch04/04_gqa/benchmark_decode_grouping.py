"""How a decode step's query heads should meet a shared key/value head: two ways, timed against each other.

With grouped-query attention, ``n_heads // n_kv_groups`` query heads read the same cached keys and values. For
one new token the package stacks those query heads as the rows of one matmul per key/value head
(``llms_from_scratch.nn.attention._decode_attention``). The peer below writes the same product as a broadcast
of each query head against ``k.unsqueeze(2)``, which PyTorch carries out by expanding the cache into one copy
per query head. Both are timed in the same run, alternating, one thread, and the script prints the ratio.

    python ch04/04_gqa/benchmark_decode_grouping.py [--heads 8 --kv-groups 2 --head-dim 64 --rounds 6]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from llms_from_scratch.nn.attention import _decode_attention


def broadcast_decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The peer: each query head broadcast against its key/value head (the cache expanded per query head)."""
    b, h, _, d = q.shape
    kv = k.shape[1]
    q = q.view(b, kv, h // kv, 1, d)  # (batch, kv heads, queries per kv head, 1, head_dim)
    scores = (q @ k.unsqueeze(2).transpose(-1, -2)) * d**-0.5  # (batch, kv, group, 1, keys)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    return (weights @ v.unsqueeze(2)).view(b, h, 1, d)  # (batch, heads, 1, head_dim)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-groups", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--contexts", type=int, nargs="+", default=[1024, 8192, 32768])
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {cpu_model()} | torch {torch.__version__} | 1 thread | load {load:.1f}")
    print(f"{args.heads} query heads, {args.kv_groups} key/value heads, head_dim {args.head_dim}, fp32, batch 1\n")
    print("| cached keys | broadcast (ms) | grouped rows (ms) | speed-up |")
    print("|---|---|---|---|")
    for n in args.contexts:
        q = torch.randn(1, args.heads, 1, args.head_dim)
        k = torch.randn(1, args.kv_groups, n, args.head_dim)
        v = torch.randn(1, args.kv_groups, n, args.head_dim)
        torch.testing.assert_close(_decode_attention(q, k, v, None), broadcast_decode_attention(q, k, v))
        seconds = {"broadcast": 0.0, "grouped": 0.0}
        for _ in range(args.rounds):  # alternate, so a change in machine load hits both alike
            for name, fn, extra in (("broadcast", broadcast_decode_attention, ()),
                                    ("grouped", _decode_attention, (None,))):
                start = time.perf_counter()
                fn(q, k, v, *extra)
                seconds[name] += time.perf_counter() - start
        old, new = (seconds[name] / args.rounds * 1e3 for name in ("broadcast", "grouped"))
        print(f"| {n:,} | {old:.2f} | {new:.2f} | {old / new:.1f}x |")


if __name__ == "__main__":
    main()
