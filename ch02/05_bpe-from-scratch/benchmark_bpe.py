"""Benchmark the from-scratch BPE tokenizer: training speed, and encoding speed as a ratio to tiktoken.

    python benchmark_bpe.py [--repeats 7]

Training: merges per second while learning a 1,000-token vocabulary from The Verdict (incremental pair counts).
Encoding: GPT-2's tokenizer loaded from OpenAI's files into ``BPETokenizer``, against tiktoken's ``gpt2``
encoding on the same texts, both timed in this run after checking that they return identical ids. "cold" clears
our chunk cache before every call (every distinct chunk is merged from bytes); "warm" reuses it, as a long-lived
tokenizer does. Each figure is the median of the repeats, with the range in brackets.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

from llms_from_scratch.bpe import END_OF_TEXT, BPETokenizer
from llms_from_scratch.data import fetch, gpt2_encoding, read_text


def timings(fn: Callable[[], object], repeats: int, before: Callable[[], None] = lambda: None) -> list[float]:
    before()
    fn()  # warm-up: imports, allocator, regex compilation
    result = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        fn()
        result.append(time.perf_counter() - start)
    return result


def summary(values: list[float], unit: str) -> str:
    return f"{statistics.median(values):,.0f} {unit} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPU cores, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    verdict = read_text("the-verdict")

    # training
    vocab_size = 1000
    n_merges = vocab_size - 256 - 1
    train_times = timings(lambda: BPETokenizer().train(verdict, vocab_size, allowed_special={END_OF_TEXT}),
                          args.repeats)
    print(f"\ntraining a {vocab_size:,}-token vocabulary on The Verdict ({n_merges} merges): "
          f"{summary([n_merges / t for t in train_times], 'merges/s')}, "
          f"median {statistics.median(train_times) * 1e3:.0f} ms per training run")

    # encoding
    ours = BPETokenizer.from_gpt2_files(fetch("gpt2-vocab-bpe"), fetch("gpt2-encoder-json"))
    reference = gpt2_encoding()
    texts = {"The Verdict": verdict, "instruction data": read_text("instruction-data")}
    print("\nencoding (tokens/s; ratio = our time / tiktoken's time, higher is slower):")
    for name, text in texts.items():
        ids = reference.encode_ordinary(text)
        if ours.encode_ordinary(text) != ids:
            raise SystemExit(f"{name}: our ids differ from tiktoken's; fix that before timing anything")
        n = len(ids)
        t_ref = timings(lambda text=text: reference.encode_ordinary(text), args.repeats)
        t_cold = timings(lambda text=text: ours.encode_ordinary(text), args.repeats, before=ours.clear_cache)
        t_warm = timings(lambda text=text: ours.encode_ordinary(text), args.repeats)
        ref = statistics.median(t_ref)
        print(f"  {name} ({len(text):,} characters, {n:,} tokens)")
        print(f"    tiktoken        {summary([n / t for t in t_ref], 'tokens/s')}")
        print(f"    ours, cold      {summary([n / t for t in t_cold], 'tokens/s')}  "
              f"ratio {statistics.median(t_cold) / ref:.1f}x")
        print(f"    ours, warm      {summary([n / t for t in t_warm], 'tokens/s')}  "
              f"ratio {statistics.median(t_warm) / ref:.1f}x")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
