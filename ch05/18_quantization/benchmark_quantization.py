"""Decode speed of SmolLM2-135M-Instruct with quantized weights, against `transformers` in fp32.

Cases, all greedy from the same 16-token prompts at batch 1 and 8, in one process:

* **transformers fp32**: `AutoModelForCausalLM` on the same GGUF file (dequantized to fp32), eager attention;
* **ours fp32** and **ours bf16**: the zoo's model loaded in float (the GGUF dequantized), with the decode set-up
  (`prepare_for_decoding`, kernels measured here) as the CLI uses it;
* **ours int8**, **ours int4**, **ours GGUF**: `load_gguf_quantized(path, "int8" / "int4" / "gguf")`: every
  linear layer in 8 bits per channel, in 4 bits in groups of 32, or in the file's own blocks (Q4_1, with the Q8_0
  token table); the output head in int8 per channel in all three. Kernels and stacked projections are chosen by
  measuring for the batch size, with bfloat16 activations allowed for the quantized products (what
  `generate --dtype auto` does); `--activations float32` keeps them in float32;
* **ours int8-dynamic (W8A8)**: the int8 model, with kernels that also quantize each decode step's activations
  to 8 bits allowed to race the others (`generate --quantize int8-dynamic`);
* **ours int8 compiled** (with `--compile`): the int8 model with its decode step compiled by TorchInductor
  (`nn.compiled_decoding`, `generate --quantize int8 --compile`), wrapping the very model of **ours int8**
  (same kernels, so the same tokens are expected); the compile time and the result of the race between compiled
  and plain steps are printed, and the compiled step is timed whichever won. With `--compile`, **ours GGUF
  compiled** does the same for the GGUF case when it is among the cases.

`--cases` keeps only the named cases (transformers fp32, the reference, always runs).

Rounds alternate the order of the cases (forward, then reversed) so that background load hits all alike; each
case reports the median tokens/s over rounds (min-max) and the CPU time the process spent per token (less
disturbed by other processes than the wall clock, for one thread). Beside it: the bytes one decode step reads per
token (every weight matrix once, in the layout its kernel reads, plus the KV cache; divided by the batch size),
the memory-bandwidth bound those bytes allow (bandwidth measured here by a matrix-vector product over a 256 MB
matrix with the same thread count), and the fraction of that bound reached. Quantized models compute other numbers than fp32, so
their tokens may differ; the table says how many equal transformers' tokens.

    python benchmark_quantization.py                                  # 3 rounds of 64 new tokens, batch 1 and 8
    python benchmark_quantization.py --rounds 5 --new-tokens 200 --threads 2 --batch 1
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
PROMPT_TOKENS = 16


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
    return (f"CPU: {name}, {os.cpu_count()} logical CPUs; SIMD flags: {' '.join(simd) or 'none reported'}; "
            f"PyTorch CPU capability: {torch.backends.cpu.get_cpu_capability()}")


def cpu_pressure() -> float | None:
    """Share of the last 10 s in which some runnable task waited for a CPU (Linux PSI), in percent."""
    try:
        return float(Path("/proc/pressure/cpu").read_text().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def read_bandwidth_gb_s(megabytes: int = 256, repeats: int = 5) -> float:
    """Memory read bandwidth as a decode step meets it: the quickest of ``repeats`` matrix-vector products over a
    float32 matrix far larger than the caches."""
    side = int((megabytes * 2**20 // 4) ** 0.5)
    matrix, vector = torch.ones(side, side), torch.ones(side)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mv(matrix, vector)
        best = min(best, time.perf_counter() - start)
    return matrix.nbytes / best / 1e9


def step_bytes(model: torch.nn.Module) -> int:
    """Bytes of every matrix a decode step reads in full: linear weights in the layout their kernel reads
    (quantized codes, a kernel's own packing, or floats) and the output head. The token embedding is left out
    unless the head shares it: a step reads one row of it."""
    from llms_from_scratch.nn.decode_layout import TunedLinear
    from llms_from_scratch.quant import QuantizedLinear

    total = 0
    for module in model.modules():
        if isinstance(module, QuantizedLinear):
            if module.kernel_weight is not None:  # the kernel reads its own packing, not the codes
                total += module.kernel_weight.nbytes + module.kernel_scales.nbytes
            else:
                total += module.quantized_weight().nbytes()
        elif isinstance(module, (torch.nn.Linear, TunedLinear)):
            total += module.weight.nbytes
        else:
            continue
        bias = getattr(module, "bias", None)
        total += 0 if bias is None else bias.nbytes
    return total


def kv_bytes(cfg, tokens: int, element_size: int) -> int:
    """Bytes of keys and values a step reads at ``tokens`` of context (one sequence)."""
    return 2 * cfg.n_layers * cfg.n_kv_groups * cfg.head_dim * tokens * element_size


def build_cases(batch: int, activations: str, compile_step: bool = False, only: list[str] | None = None,
                new_tokens: int = 64) -> dict[str, torch.nn.Module]:
    import transformers

    from llms_from_scratch.models import load_pretrained, resolve
    from llms_from_scratch.models.gguf_quantized import load_gguf_quantized
    from llms_from_scratch.nn import prepare_for_decoding

    ours, _ = load_pretrained("smollm2-135m-instruct")
    _, path = resolve("smollm2-135m-instruct")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                               attn_implementation="eager").eval()
    allowed = (torch.bfloat16,) if activations == "auto" else ()

    def quantized(scheme: str) -> torch.nn.Module:
        return load_gguf_quantized(path, scheme, rows=batch, activations=allowed)

    def compiled(model: torch.nn.Module, name: str) -> torch.nn.Module:
        from llms_from_scratch.nn.compiled_decoding import CompiledDecoding, compile_for_decoding

        # the race in a cache of the size the timed runs use
        _, report = compile_for_decoding(model, batch, max_length=PROMPT_TOKENS + new_tokens)
        print(f"{name}: warm-up (compiling) {report.compile_s:.1f} s; decode step compiled "
              f"{report.compiled_step_s * 1e3:.1f} ms vs plain {report.plain_step_s * 1e3:.1f} ms, the race kept "
              f"{report.chosen}")
        return CompiledDecoding(model)  # the compiled code is cached: no second compile

    builders = {
        "ours fp32": lambda: prepare_for_decoding(ours, batch),
        "ours bf16": lambda: prepare_for_decoding(copy.deepcopy(ours).to(torch.bfloat16), batch),
        "ours int8": lambda: quantized("int8"),
        "ours int8-dynamic (W8A8)": lambda: load_gguf_quantized(path, "int8", rows=batch,
                                                                activations=(*allowed, torch.int8)),
        "ours int4": lambda: quantized("int4"),
        "ours GGUF (Q4_1 + Q8_0)": lambda: quantized("gguf"),
    }
    cases = {"transformers fp32": theirs}
    cases.update((name, build()) for name, build in builders.items() if only is None or name in only)
    if compile_step:
        # the very models of the uncompiled cases when they are timed, so both run the same kernels
        int8 = cases["ours int8"] if "ours int8" in cases else quantized("int8")
        cases["ours int8 compiled"] = compiled(int8, "ours int8 compiled")
        if "ours GGUF (Q4_1 + Q8_0)" in cases:
            cases["ours GGUF compiled"] = compiled(cases["ours GGUF (Q4_1 + Q8_0)"], "ours GGUF compiled")
    cases.setdefault("ours fp32", ours)  # its config is read below; not timed unless asked for
    return cases


def kernels_line(model: torch.nn.Module) -> str:
    """Which kernel each kind of quantized layer runs, and in which activation dtype."""
    from llms_from_scratch.quant import QuantizedLinear

    kinds = {}
    for m in model.modules():
        if isinstance(m, QuantizedLinear):
            act = "" if m.compute_dtype is None else f"@{str(m.compute_dtype).removeprefix('torch.')}"
            kinds[f"{m.scheme} {m.out_features}x{m.in_features}"] = f"{m.kernel}{act}"
    return ", ".join(f"{k}: {v}" for k, v in kinds.items())


def decode(name: str, model: torch.nn.Module, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    if name.startswith("transformers"):
        with torch.inference_mode():
            return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                  min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None)
    from llms_from_scratch.serving.generation import generate

    return generate(model, ids, new_tokens)


def run_batch(batch: int, args: argparse.Namespace, bandwidth: float) -> None:
    cases = build_cases(batch, args.activations, args.compile, args.cases, args.new_tokens)
    timed = [name for name in cases if args.cases is None or name in args.cases or name.startswith("transformers")]
    print(f"\n## batch {batch}\nkernels chosen here (one decode step of {batch} rows):")
    for name, model in cases.items():
        if "int" in name or "GGUF" in name:
            print(f"  {name}: {kernels_line(model)}")
    ids = torch.randint(100, 20000, (batch, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0))
    for name in timed:  # warm-up
        decode(name, cases[name], ids, 4)
    speeds: dict[str, list[float]] = {name: [] for name in timed}
    cpu_ms: dict[str, list[float]] = {name: [] for name in timed}
    tokens: dict[str, torch.Tensor] = {}
    pressures, loads = [], []
    for r in range(args.rounds):
        order = timed if r % 2 == 0 else timed[::-1]
        for name in order:
            pressures.append(cpu_pressure())
            loads.append(os.getloadavg()[0])
            start, cpu = time.perf_counter(), time.process_time()
            tokens[name] = decode(name, cases[name], ids, args.new_tokens)
            produced = batch * args.new_tokens
            speeds[name].append(produced / (time.perf_counter() - start))
            cpu_ms[name].append((time.process_time() - cpu) / produced * 1e3)

    cfg = cases["ours fp32"].cfg
    reference = tokens["transformers fp32"][:, PROMPT_TOKENS:]
    base = statistics.median(speeds["transformers fp32"])
    mid_context = PROMPT_TOKENS + args.new_tokens // 2
    seen = [p for p in pressures if p is not None]
    print(f"load average during the runs {min(loads):.1f}-{max(loads):.1f}; CPU pressure (share of time a task "
          f"waited for a CPU) up to {max(seen, default=float('nan')):.0f}%")
    print("\n| case | tok/s median (min-max) | vs transformers fp32 | CPU ms per token | MB read per token | "
          "bound tok/s | of bound | tokens equal to transformers |")
    print("|---|---|---|---|---|---|---|---|")
    for name in timed:
        model = cases[name]
        if name.startswith("transformers"):
            nbytes = sum(p.nbytes for n, p in model.named_parameters() if "embed_tokens" not in n)
            nbytes += model.lm_head.weight.nbytes  # tied: the head reads the whole embedding matrix
        else:
            nbytes = step_bytes(getattr(model, "model", model))  # a compiled step reads the wrapped model's
        element = 2 if name.endswith("bf16") else 4
        per_token = nbytes / batch + kv_bytes(cfg, mid_context, element)
        bound = bandwidth * 1e9 / per_token
        med = statistics.median(speeds[name])
        same = int((tokens[name][:, PROMPT_TOKENS:] == reference).sum())
        print(f"| {name} | {med:.1f} ({min(speeds[name]):.1f}-{max(speeds[name]):.1f}) | {med / base:.2f}x | "
              f"{statistics.median(cpu_ms[name]):.1f} | {per_token / 1e6:.0f} | {bound:.0f} | {med / bound:.0%} | "
              f"{same}/{reference.numel()} |")
    for fast, plain in (("ours int8 compiled", "ours int8"), ("ours GGUF compiled", "ours GGUF (Q4_1 + Q8_0)")):
        if fast in tokens and plain in tokens:
            same = int((tokens[fast] == tokens[plain]).sum()) - ids.numel()
            print(f"\n{fast}: {same}/{reference.numel()} tokens equal to {plain} (uncompiled)")
    del cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
    parser.add_argument("--activations", choices=["auto", "float32"], default="auto",
                        help="auto: quantized products may run on bfloat16 activations where measured faster; "
                             "float32: always float32")
    parser.add_argument("--compile", action="store_true",
                        help="add the case 'ours int8 compiled', and 'ours GGUF compiled' where the GGUF case is "
                             "built (TorchInductor; compiling takes a while)")
    parser.add_argument("--cases", nargs="+", default=None,
                        help="time only these cases, e.g. 'ours int8' 'ours int8 compiled' (transformers fp32 always)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import transformers

    print(cpu_line())
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, "
          f"{PROMPT_TOKENS}-token prompts, {args.new_tokens} new tokens, greedy, {args.rounds} rounds; "
          f"load average now {os.getloadavg()[0]:.1f}, CPU pressure {cpu_pressure()}%")
    bandwidth = read_bandwidth_gb_s()
    print(f"memory read bandwidth measured now ({args.threads} threads): {bandwidth:.1f} GB/s")
    for batch in args.batch:
        run_batch(batch, args, bandwidth)


if __name__ == "__main__":
    main()
