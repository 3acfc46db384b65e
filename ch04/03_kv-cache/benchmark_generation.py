"""Generation speed of the zoo's KV-cache decoder against `transformers` `generate`, same model and settings.

Three implementations generate greedily, 200 new tokens from a 16-token prompt, fp32, in one process:

* **plain**: our model as loaded;
* **tuned**: our model after ``prepare_for_decoding(model, batch_size)``, which measures the candidate kernels
  on this machine (or reads the choice it measured here before) and falls back to plain where nothing is faster;
  the time it took and what it chose are printed, not counted in tokens/s;
* **transformers**: its own ``generate``, eager attention.

Runs alternate (plain, tuned, transformers, then the reverse order, ...) so background load hits all alike, and
every round must produce identical tokens on all three. Each table names the CPU (model and SIMD flags) and the
CPU pressure during the case, since a kernel that wins on one CPU can lose on another. Peak memory while
generating (resident set, Linux) is measured in a fresh child process per case.

    python benchmark_generation.py                  # GPT-2 124M (random weights) and SmolLM2-135M (real)
    python benchmark_generation.py --rounds 5 --threads 2 --models gpt2 --no-memory
    python benchmark_generation.py --retune         # measure the kernels afresh instead of reading the cache

Prints a table with median tokens/s (min-max) and the ratios to transformers and to plain.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SIMD_PREFIXES = ("avx", "amx", "fma", "sse4", "asimd", "sve", "neon")  # the flags that decide matmul kernels


def load_pair(which: str, only: str | None = None):
    """Our model and the transformers model with identical weights (``only``: load just one, other is None)."""
    import transformers

    from llms_from_scratch.models import build_model, get_config, load_hf_checkpoint, load_pretrained, resolve

    if which == "gpt2":
        torch.manual_seed(123)
        ours = build_model(get_config("gpt2-124m")).eval()
        folder = tempfile.mkdtemp(prefix="bench-gpt2-")
        from llms_from_scratch.models import save_hf_checkpoint

        save_hf_checkpoint(ours, folder)
        ours = load_hf_checkpoint(folder) if only != "transformers" else None
        if only == "ours":
            return ours, None
        ref = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                                attn_implementation="eager")
        return ours, ref.eval()
    ours = load_pretrained("smollm2-135m-instruct")[0] if only != "transformers" else None
    if only == "ours":
        return ours, None
    _, path = resolve("smollm2-135m-instruct")
    ref = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                            attn_implementation="eager")
    return ours, ref.eval()


def run_ours(model, ids, new_tokens):
    from llms_from_scratch.generation import generate

    return generate(model, ids, new_tokens)


def run_theirs(model, ids, new_tokens):
    with torch.inference_mode():
        return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None)


def prompt(batch: int, vocab: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(100, min(vocab, 20000), (batch, 16), generator=g)


def cpu_line() -> str:
    """The CPU model, its SIMD flags and what the autotuner keys its choices by."""
    from llms_from_scratch.nn.autotune import cpu_description, machine_key

    name, flags = cpu_description()
    simd = sorted(f for f in flags.split() if f.startswith(SIMD_PREFIXES))
    return f"CPU: {name}; SIMD flags: {' '.join(simd) or 'none reported'}; autotune key: {machine_key()}"


def cpu_pressure() -> float | None:
    """Share of the last 10 s in which some runnable task waited for a CPU (Linux PSI), in percent."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]  # "some avg10=... avg60=..."
    except OSError:
        return None
    return float(line.split()[1].split("=")[1])


def tuned_model(ours, batch: int, cache_file: Path | None) -> tuple[torch.nn.Module, dict]:
    """Our model set up by the autotuner for ``batch``, with how long that took and what it chose."""
    from llms_from_scratch.nn import build_decoding_model, tune_decoding

    start = time.perf_counter()
    plan = tune_decoding(ours, batch, cache_file=cache_file)  # what prepare_for_decoding does, in its two steps
    tuned = build_decoding_model(ours, plan)
    seconds = time.perf_counter() - start
    chosen = {key: kernel for key, kernel in plan.choices.items() if kernel not in ("linear", "separate")}
    return tuned, {"prepare_s": round(seconds, 2), "chosen": chosen or "plain"}


def time_case(which: str, batch: int, rounds: int, new_tokens: int, pair, cache_file: Path | None) -> dict:
    ours, ref = pair
    tuned, tune_info = tuned_model(ours, batch, cache_file)
    ids = prompt(batch, ours.cfg.vocab_size)
    impls = [("plain", run_ours, ours), ("tuned", run_ours, tuned), ("transformers", run_theirs, ref)]
    warm = [fn(model, ids, 8) for _, fn, model in impls]  # warm-up (and a first agreement check)
    assert all(torch.equal(warm[0], w) for w in warm), "the implementations disagree on the warm-up tokens"
    speeds = {name: [] for name, _, _ in impls}
    pressures, loads = [], []
    for r in range(rounds):
        outputs = []
        for name, fn, model in impls if r % 2 == 0 else reversed(impls):
            pressures.append(cpu_pressure())
            loads.append(os.getloadavg()[0])
            start = time.perf_counter()
            outputs.append(fn(model, ids, new_tokens))
            speeds[name].append(batch * new_tokens / (time.perf_counter() - start))
        if not all(torch.equal(outputs[0], out) for out in outputs):
            raise AssertionError(f"{which} batch {batch}: different tokens")
    pressures = [p for p in pressures if p is not None]
    return {"speeds": speeds, "load": statistics.mean(loads), "tune": tune_info,
            "cpu_pressure": round(max(pressures), 1) if pressures else None}


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def memory_child(which: str, impl: str, batch: int, new_tokens: int, cache_file: Path | None) -> None:
    """Runs in a fresh process: load one implementation, generate once, report peak RSS in MiB.

    ``impl`` "ours" is the tuned model (the autotuner's choice read from the cache the timing run filled). The
    load peak includes building the random GPT-2 weights (both sides do that); on Linux the peak is then reset
    (``/proc/self/clear_refs``), so ``peak_mib`` is the resident peak while generating: the model's weights plus
    everything the set-up and generation allocate.
    """
    ours, theirs = load_pair(which, only=impl)
    model = ours if impl == "ours" else theirs
    ids = prompt(batch, model.config.vocab_size if impl == "transformers" else model.cfg.vocab_size)
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident set size
        reset = True
    except OSError:
        reset = False
    if impl == "ours":
        from llms_from_scratch.nn import prepare_for_decoding

        model = prepare_for_decoding(model, batch_size=batch, cache_file=cache_file)  # the plain model goes
    (run_ours if impl == "ours" else run_theirs)(model, ids, new_tokens)
    peak = _peak_rss_mib() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": peak, "load_peak_mib": load_peak}))


def peak_memory(which: str, impl: str, batch: int, new_tokens: int, threads: int, cache_file: Path | None) -> float:
    cmd = [sys.executable, __file__, "--memory-child", which, impl, str(batch), "--new-tokens", str(new_tokens),
           "--threads", str(threads)] + (["--cache-file", str(cache_file)] if cache_file else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)["peak_mib"]


def print_table(rows: list[dict], header: str) -> None:
    print(f"\n{header}\n{cpu_line()}")
    print("\n| model | batch | plain tok/s (min-max) | tuned tok/s (min-max) | transformers tok/s (min-max) "
          "| plain / tf | tuned / tf | tuned / plain | CPU pressure % | peak MiB tuned / tf |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = " | ".join(f"{r[f'{k}_tok_s']} {tuple(r[f'{k}_range'])}" for k in ("plain", "tuned", "transformers"))
        mem = f"{r.get('ours_peak_mib', '-')} / {r.get('transformers_peak_mib', '-')}"
        print(f"| {r['model']} | {r['batch']} | {cells} | {r['plain_ratio']}x | {r['tuned_ratio']}x "
              f"| {r['tuned_vs_plain']}x | {r['cpu_pressure']} | {mem} |")
    for r in rows:
        print(f"{r['model']} batch {r['batch']}: set-up took {r['tune']['prepare_s']} s, chose {r['tune']['chosen']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["gpt2", "smollm2"], choices=["gpt2", "smollm2"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    parser.add_argument("--retune", action="store_true",
                        help="measure the kernels afresh (in a temporary cache file) instead of reusing the choice "
                             "stored in the user cache")
    parser.add_argument("--memory-child", nargs=3, metavar=("MODEL", "IMPL", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--cache-file", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        which, impl, batch = args.memory_child
        memory_child(which, impl, int(batch), args.new_tokens, args.cache_file)
        return

    import transformers

    logging.basicConfig(format="%(name)s: %(message)s")
    logging.getLogger("llms_from_scratch.nn.autotune").setLevel(logging.INFO)  # what it chose and why
    header = (f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, "
              f"{os.cpu_count()} CPUs, fp32, greedy, {args.new_tokens} new tokens from 16, {args.rounds} rounds")
    print(header)
    print(cpu_line())
    cache_file = Path(tempfile.mkdtemp(prefix="bench-autotune-")) / "decode-kernels.json" if args.retune else None
    rows = []
    for which in args.models:
        pair = load_pair(which)
        for batch in args.batches:
            result = time_case(which, batch, args.rounds, args.new_tokens, pair, cache_file)
            s = result["speeds"]
            med = {k: statistics.median(v) for k, v in s.items()}
            row = {"model": which, "batch": batch, **{f"{k}_tok_s": round(v, 1) for k, v in med.items()},
                   **{f"{k}_range": (round(min(v), 1), round(max(v), 1)) for k, v in s.items()},
                   "plain_ratio": round(med["plain"] / med["transformers"], 2),
                   "tuned_ratio": round(med["tuned"] / med["transformers"], 2),
                   "tuned_vs_plain": round(med["tuned"] / med["plain"], 2),
                   "load_avg": round(result["load"], 1), "cpu_pressure": result["cpu_pressure"],
                   "tune": result["tune"]}
            if not args.no_memory:
                for impl, key in (("ours", "ours_peak_mib"), ("transformers", "transformers_peak_mib")):
                    row[key] = round(peak_memory(which, impl, batch, args.new_tokens, args.threads, cache_file))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print_table(rows, header)


if __name__ == "__main__":
    main()
