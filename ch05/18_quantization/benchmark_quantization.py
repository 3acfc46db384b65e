"""Decode speed of SmolLM2-135M-Instruct with quantized weights, against `transformers` in fp32.

Cases, all greedy from the same 16-token prompt at batch 1, in one process:

* **transformers fp32**: `AutoModelForCausalLM` on the same GGUF file (dequantized to fp32), eager attention;
* **ours fp32** and **ours bf16**: the zoo's model as loaded, and cast to bfloat16;
* **ours int8**, **ours int4**: `quantize_model(model, "int8")` (per channel) and `quantize_model(model, "int4")`
  (groups of 32, zero point), each with the kernel that `choose_kernels` measured fastest here for one input row;
  the output head (tied to the embedding in SmolLM2) is quantized to int8 per channel in both, as llama.cpp keeps
  it in 8 bits; ``--head fp32`` leaves it alone.

Rounds alternate the order of the cases (forward, then reversed) so that background load hits all alike; each
case reports the median tokens/s over rounds (min-max). Beside it: the bytes one decode step reads (every weight
matrix once, in its stored format, plus the KV cache), the memory-bandwidth bound those bytes allow (bandwidth
measured here by summing a 256 MB tensor), and the fraction of that bound reached. Quantized models compute other
numbers than fp32, so their tokens may differ; the table says how many of them equal transformers' tokens.

    python benchmark_quantization.py                         # 3 rounds of 64 new tokens, 2 threads
    python benchmark_quantization.py --rounds 5 --new-tokens 200 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from pathlib import Path

import torch

SIMD_PREFIXES = ("avx", "amx", "fma", "sse4", "asimd", "sve", "neon")


def cpu_line() -> str:
    """The CPU model and the SIMD flags that decide which matrix kernels run."""
    name, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name in ("", platform.machine(), platform.processor()):
                name = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = value
    except OSError:
        pass
    simd = sorted(f for f in flags.split() if f.startswith(SIMD_PREFIXES))
    return (f"CPU: {name}; SIMD flags: {' '.join(simd) or 'none reported'}; "
            f"PyTorch CPU capability: {torch.backends.cpu.get_cpu_capability()}")


def cpu_pressure() -> float | None:
    """Share of the last 10 s in which some runnable task waited for a CPU (Linux PSI), in percent."""
    try:
        return float(Path("/proc/pressure/cpu").read_text().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def read_bandwidth_gb_s(megabytes: int = 256, repeats: int = 5) -> float:
    """Memory read bandwidth: the quickest of ``repeats`` sums over a tensor far larger than the caches."""
    x = torch.ones(megabytes * 2**20 // 4)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best / 1e9


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of every matrix a decode step reads in full: linear weights (quantized or not) and the output head.

    The token embedding is excluded unless the head shares it: a step reads one row of it.
    """
    from llms_from_scratch.quant import QuantizedLinear

    total = 0
    for module in model.modules():
        if isinstance(module, QuantizedLinear):
            total += module.quantized_weight().nbytes() + (0 if module.bias is None else module.bias.nbytes)
        elif isinstance(module, torch.nn.Linear):
            total += module.weight.nbytes + (0 if module.bias is None else module.bias.nbytes)
    return total


def kv_bytes(cfg, tokens: int, element_size: int) -> int:
    """Bytes of keys and values a step reads at ``tokens`` of context."""
    return 2 * cfg.n_layers * cfg.n_kv_groups * cfg.head_dim * tokens * element_size


def build_cases(head: str) -> tuple[dict, torch.nn.Module]:
    import transformers

    from llms_from_scratch.models import load_pretrained, resolve
    from llms_from_scratch.quant import QuantizedLinear, choose_kernels, quantize_model

    ours, _ = load_pretrained("smollm2-135m-instruct")
    _, path = resolve("smollm2-135m-instruct")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                               attn_implementation="eager").eval()

    def quantized(scheme: str) -> torch.nn.Module:
        model = quantize_model(copy.deepcopy(ours), scheme, kernel="plain")
        if head == "int8":  # a quantized copy of the (tied) head; the embedding keeps its fp32 rows
            model.out_head = QuantizedLinear.from_linear(model.out_head, "int8")
        choices = choose_kernels(model, rows=1)
        print(f"  {scheme}: kernels chosen here: {choices}")
        return model

    print("choosing kernels (measured on this machine, one input row):")
    cases = {
        "transformers fp32": theirs,
        "ours fp32": ours,
        "ours bf16": copy.deepcopy(ours).to(torch.bfloat16),
        "ours int8": quantized("int8"),
        "ours int4": quantized("int4"),
    }
    return cases, ours


def decode(name: str, model: torch.nn.Module, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    if name.startswith("transformers"):
        with torch.inference_mode():
            return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                  min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None)
    from llms_from_scratch.serving.generation import generate

    return generate(model, ids, new_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--head", choices=["int8", "fp32"], default="int8",
                        help="how the quantized cases store the output head (default: int8 per channel)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import transformers

    print(cpu_line())
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, "
          f"batch 1, 16-token prompt, {args.new_tokens} new tokens, greedy, {args.rounds} rounds; "
          f"load average {os.getloadavg()[0]:.1f}, CPU pressure {cpu_pressure()}%")
    bandwidth = read_bandwidth_gb_s()
    print(f"memory read bandwidth measured now: {bandwidth:.1f} GB/s")

    cases, ours = build_cases(args.head)
    ids = torch.randint(100, 20000, (1, 16), generator=torch.Generator().manual_seed(0))
    for name, model in cases.items():  # warm-up
        decode(name, model, ids, 4)
    speeds: dict[str, list[float]] = {name: [] for name in cases}
    tokens: dict[str, torch.Tensor] = {}
    pressures = []
    for r in range(args.rounds):
        order = list(cases) if r % 2 == 0 else list(reversed(cases))
        for name in order:
            pressures.append(cpu_pressure())
            start = time.perf_counter()
            tokens[name] = decode(name, cases[name], ids, args.new_tokens)
            speeds[name].append(args.new_tokens / (time.perf_counter() - start))

    reference = tokens["transformers fp32"][0, 16:]
    base = statistics.median(speeds["transformers fp32"])
    mid_context = 16 + args.new_tokens // 2
    print(f"\nCPU pressure during the runs: max {max((p for p in pressures if p is not None), default=None)}%")
    print("\n| case | tok/s median (min-max) | vs transformers fp32 | MB read per token | bound tok/s | "
          "of bound | tokens equal to transformers |")
    print("|---|---|---|---|---|---|---|")
    for name, model in cases.items():
        if name.startswith("transformers"):
            nbytes = sum(p.nbytes for n, p in model.named_parameters() if "embed_tokens" not in n)
            nbytes += model.lm_head.weight.nbytes  # tied: the head reads the whole embedding matrix
        else:
            nbytes = weight_bytes(model)
        element = 2 if name.endswith("bf16") else 4
        nbytes += kv_bytes(ours.cfg, mid_context, element)
        bound = bandwidth * 1e9 / nbytes
        med = statistics.median(speeds[name])
        same = int((tokens[name][0, 16:] == reference).sum())
        print(f"| {name} | {med:.1f} ({min(speeds[name]):.1f}-{max(speeds[name]):.1f}) | {med / base:.2f}x | "
              f"{nbytes / 1e6:.0f} | {bound:.0f} | {med / bound:.0%} | {same}/{args.new_tokens} |")


if __name__ == "__main__":
    main()
