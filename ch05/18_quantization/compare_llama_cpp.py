"""Decode speed on the same SmolLM2-135M-Instruct GGUF file: llama.cpp (through `llama-cpp-python`) against this
package's model with the file's blocks kept quantized (`load_gguf_quantized`), batch 1, same thread count.

Both continue the same 16-token prompts greedily for the same number of tokens, prompt included in the time;
rounds alternate the order (llama.cpp first, then ours first) and each side reports its median tokens/s over
rounds and the CPU time its process spent per token. `llama-cpp-python` is optional and not a dependency of the
package; build it from source for the CPU it runs on:

    CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python
    python compare_llama_cpp.py --threads 1 --rounds 5 --new-tokens 64
    python compare_llama_cpp.py --threads 2 --compile    # adds ours with the decode step compiled


The two compute different numbers (llama.cpp quantizes the activations to 8 bits for its dot products; ours
multiply in float32 or bfloat16), so their tokens may part ways after a while: the table counts how many of
ours equal llama.cpp's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from benchmark_quantization import PROMPT_TOKENS, cpu_line, cpu_pressure


def llama_cpp_model(path: str, threads: int, context: int):
    try:
        import llama_cpp
    except ImportError:
        sys.exit('this comparison needs llama-cpp-python: CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python')
    model = llama_cpp.Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=context,
                            verbose=False)
    info = llama_cpp.llama_print_system_info().decode().strip()
    return model, f"llama-cpp-python {llama_cpp.__version__}; {info}"


def llama_cpp_decode(model, prompt: list[int], new_tokens: int) -> list[int]:
    out = []
    for token in model.generate(prompt, top_k=1, temp=0.0, reset=True):
        out.append(token)
        if len(out) == new_tokens:
            return out
    return out


def ours_decode(model: torch.nn.Module, prompt: list[int], new_tokens: int) -> list[int]:
    from llms_from_scratch.serving.generation import generate

    return generate(model, torch.tensor([prompt]), new_tokens)[0, len(prompt):].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--activations", choices=["auto", "float32"], default="auto",
                        help="ours: bfloat16 activations allowed for the quantized products where faster (auto)")
    parser.add_argument("--compile", action="store_true",
                        help="also time ours with the decode step compiled (TorchInductor; compiling takes a while)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from llms_from_scratch.models import resolve
    from llms_from_scratch.models.gguf_quantized import load_gguf_quantized

    _, path = resolve("smollm2-135m-instruct")
    theirs, info = llama_cpp_model(str(path), args.threads, PROMPT_TOKENS + args.new_tokens + 8)
    allowed = (torch.bfloat16,) if args.activations == "auto" else ()
    ours = load_gguf_quantized(path, "gguf", activations=allowed)
    print(cpu_line())
    print(info)
    print(f"torch {torch.__version__}; {args.threads} threads each, batch 1, {PROMPT_TOKENS}-token prompts, "
          f"{args.new_tokens} new tokens, greedy, {args.rounds} rounds; file {path.name}")

    runs = {"llama.cpp": lambda p: llama_cpp_decode(theirs, p, args.new_tokens),
            "ours (GGUF blocks kept)": lambda p: ours_decode(ours, p, args.new_tokens)}
    if args.compile:
        from llms_from_scratch.nn.compiled_decoding import CompiledDecoding, compile_for_decoding

        _, report = compile_for_decoding(ours, max_length=PROMPT_TOKENS + args.new_tokens)
        print(f"ours compiled: warm-up (compiling) {report.compile_s:.1f} s; decode step compiled "
              f"{report.compiled_step_s * 1e3:.1f} ms vs plain {report.plain_step_s * 1e3:.1f} ms, the race kept "
              f"{report.chosen}")
        compiled = CompiledDecoding(ours)  # the same model and kernels; timed whichever won the race
        runs["ours, decode step compiled"] = lambda p: ours_decode(compiled, p, args.new_tokens)
    prompts = [torch.randint(100, 20000, (PROMPT_TOKENS,), generator=torch.Generator().manual_seed(r)).tolist()
               for r in range(args.rounds)]
    for fn in runs.values():  # warm-up
        fn(prompts[0][:4])
    speeds = {name: [] for name in runs}
    cpu_ms = {name: [] for name in runs}
    tokens = {name: [] for name in runs}
    loads, pressures = [], []
    for r, prompt in enumerate(prompts):
        for name in list(runs) if r % 2 == 0 else list(reversed(runs)):
            loads.append(os.getloadavg()[0])
            pressures.append(cpu_pressure())
            start, cpu = time.perf_counter(), time.process_time()
            tokens[name].append(runs[name](prompt))
            speeds[name].append(args.new_tokens / (time.perf_counter() - start))
            cpu_ms[name].append((time.process_time() - cpu) / args.new_tokens * 1e3)

    seen = [p for p in pressures if p is not None]
    print(f"load average during the runs {min(loads):.1f}-{max(loads):.1f}; CPU pressure up to "
          f"{max(seen, default=float('nan')):.0f}%")
    base = statistics.median(speeds["llama.cpp"])
    base_cpu = statistics.median(cpu_ms["llama.cpp"])
    print("\n| | tok/s median (min-max) | vs llama.cpp | CPU ms per token | vs llama.cpp (CPU time) | "
          "tokens equal to llama.cpp |")
    print("|---|---|---|---|---|---|")
    for name in runs:
        med, cpu = statistics.median(speeds[name]), statistics.median(cpu_ms[name])
        same = sum(a == b for ours_row, theirs_row in zip(tokens[name], tokens["llama.cpp"])
                   for a, b in zip(ours_row, theirs_row))
        print(f"| {name} | {med:.1f} ({min(speeds[name]):.1f}-{max(speeds[name]):.1f}) | {med / base:.2f}x | "
              f"{cpu:.1f} | {base_cpu / cpu:.2f}x | {same}/{args.rounds * args.new_tokens} |")


if __name__ == "__main__":
    main()
