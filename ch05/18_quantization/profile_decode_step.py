"""Where one decode step of SmolLM2-135M-Instruct spends its time, batch 1: the quantized matrix products against
everything else (norms, RoPE, attention over the cache, the cache writes, Python and dispatch).

For each model: the CPU time of a whole step; of the same step with every quantized layer answering at once with
zeros of the right shape (what is left is the rest of the model); and of the layers' kernels called directly on
random inputs (their own cost, without the module's Python). CPU time of the process (``time.process_time``)
rather than the wall clock, so that other processes on the machine disturb the figures less; with one thread it
is the time the step took when it ran. ``--profile`` adds torch.profiler's table of the busiest operators.

    python profile_decode_step.py --threads 1
    python profile_decode_step.py --threads 2 --profile
"""

from __future__ import annotations

import argparse
import time

import torch
from benchmark_quantization import cpu_line


def cpu_ms(fn, repeats: int = 20) -> float:
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from llms_from_scratch.models import load_pretrained, resolve
    from llms_from_scratch.models.gguf_quantized import load_gguf_quantized
    from llms_from_scratch.quant import QuantizedLinear
    from llms_from_scratch.quant.kernels import KERNELS

    _, path = resolve("smollm2-135m-instruct")
    models = {
        "ours fp32": load_pretrained("smollm2-135m-instruct")[0],
        "int8, bf16 activations": load_gguf_quantized(path, "int8", activations=(torch.bfloat16,)),
        "int8, fp32 activations": load_gguf_quantized(path, "int8"),
        "int8, 8-bit activations allowed (W8A8)": load_gguf_quantized(path, "int8",
                                                                      activations=(torch.bfloat16, torch.int8)),
        "GGUF Q4_1, bf16 activations": load_gguf_quantized(path, "gguf", activations=(torch.bfloat16,)),
    }
    print(cpu_line())
    print(f"torch {torch.__version__}, {args.threads} threads, batch 1, CPU ms per decode step (median of "
          f"{args.rounds} rounds)")
    one = torch.tensor([[5]])
    rows = {}
    with torch.no_grad():
        for name, model in models.items():
            layers = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
            inputs = {m: torch.randn(1, m.in_features).to(m.compute_dtype or torch.float32) for m in layers}
            cache = model.new_cache(1, 16 + 40 * args.rounds * 3)
            model(torch.randint(100, 2000, (1, 16)), cache=cache, last_token_only=True)

            def step(model=model, cache=cache):
                model(one, cache=cache, last_token_only=True)

            def kernels(layers=layers, inputs=inputs):
                for m in layers:
                    KERNELS[m.kernel].run(m, inputs[m], *m.kernel_operands())

            real_forward = QuantizedLinear.forward
            results = []
            for _ in range(args.rounds):
                full = cpu_ms(step)
                QuantizedLinear.forward = lambda self, x: torch.zeros(*x.shape[:-1], self.out_features,
                                                                       dtype=x.dtype)
                try:
                    rest = cpu_ms(step)
                finally:
                    QuantizedLinear.forward = real_forward
                results.append((full, rest, cpu_ms(kernels) if layers else float("nan")))
            rows[name] = [sorted(r[i] for r in results)[len(results) // 2] for i in range(3)]
            if args.profile and layers:
                from torch.profiler import ProfilerActivity, profile

                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    for _ in range(10):
                        step()
                print(f"\n{name}: torch.profiler, 10 steps\n"
                      + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    print("\n| model | whole step | step with the quantized layers answering zeros | their kernels alone |")
    print("|---|---|---|---|")
    for name, (full, rest, kernel) in rows.items():
        kernel_text = "(no quantized layers)" if kernel != kernel else f"{kernel:.1f}"
        print(f"| {name} | {full:.1f} | {rest:.1f} | {kernel_text} |")


if __name__ == "__main__":
    main()
