"""Generation speed of the zoo's KV-cache decoder against `transformers` `generate`, same model and settings.

Both generate greedily, 200 new tokens from a 16-token prompt, fp32, eager attention for transformers; our
model is first set up for the batch size (``prepare_for_decoding``: the matrix-product kernel chosen by the
number of rows, plus fused projections at batch 1; same values, not timed);
runs alternate (ours, theirs, ours, ...) so background load hits both alike, and each pair must produce
identical tokens. Peak memory while generating (resident set, Linux) is measured in a fresh child process per case.

    python benchmark_generation.py                  # GPT-2 124M (random weights) and SmolLM2-135M (real)
    python benchmark_generation.py --rounds 5 --threads 2 --models gpt2

Prints a table with median tokens/s (min-max) and the ratio ours / transformers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch


def load_pair(which: str, only: str | None = None):
    """Our model and the transformers model with identical weights (``only``: load just one, other is None)."""
    import transformers

    from llms_from_scratch.models import build_model, get_config, load_hf_checkpoint, load_pretrained, resolve

    if which == "gpt2":
        import tempfile

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


def load_average() -> float:
    return os.getloadavg()[0]


def time_case(which: str, batch: int, rounds: int, new_tokens: int, pair) -> dict:
    from llms_from_scratch.nn import prepare_for_decoding

    ours, ref = pair
    prepare_for_decoding(ours, batch_size=batch)  # our decode set-up for this batch size (values unchanged)
    ids = prompt(batch, ours.cfg.vocab_size)
    a, b = run_ours(ours, ids, 8), run_theirs(ref, ids, 8)  # warm-up (and a first agreement check)
    assert torch.equal(a, b), "ours and transformers disagree on the warm-up tokens"
    speeds = {"ours": [], "transformers": []}
    loads = []
    for _ in range(rounds):
        for name, fn, model in (("ours", run_ours, ours), ("transformers", run_theirs, ref)):
            loads.append(load_average())
            start = time.perf_counter()
            out = fn(model, ids, new_tokens)
            speeds[name].append(batch * new_tokens / (time.perf_counter() - start))
            if name == "ours":
                mine = out
            elif not torch.equal(mine, out):
                raise AssertionError(f"{which} batch {batch}: different tokens")
    return {"speeds": speeds, "load": statistics.mean(loads)}


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def memory_child(which: str, impl: str, batch: int, new_tokens: int) -> None:
    """Runs in a fresh process: load one implementation, generate once, report peak RSS in MiB.

    The load peak includes building the random GPT-2 weights (both sides do that); on Linux the peak is then
    reset (``/proc/self/clear_refs``), so ``peak_mib`` is the resident peak while generating: the model's
    weights plus everything generation allocates.
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

        prepare_for_decoding(model, batch_size=batch)
    (run_ours if impl == "ours" else run_theirs)(model, ids, new_tokens)
    peak = _peak_rss_mib() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": peak, "load_peak_mib": load_peak}))


def peak_memory(which: str, impl: str, batch: int, new_tokens: int, threads: int) -> float:
    cmd = [sys.executable, __file__, "--memory-child", which, impl, str(batch), "--new-tokens", str(new_tokens),
           "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["gpt2", "smollm2"], choices=["gpt2", "smollm2"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    parser.add_argument("--memory-child", nargs=3, metavar=("MODEL", "IMPL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        which, impl, batch = args.memory_child
        memory_child(which, impl, int(batch), args.new_tokens)
        return

    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs, fp32, greedy, {args.new_tokens} new tokens from 16, {args.rounds} rounds")
    rows = []
    for which in args.models:
        pair = load_pair(which)
        for batch in args.batches:
            result = time_case(which, batch, args.rounds, args.new_tokens, pair)
            s = result["speeds"]
            med = {k: statistics.median(v) for k, v in s.items()}
            row = {"model": which, "batch": batch, **{f"{k}_tok_s": round(v, 1) for k, v in med.items()},
                   "ratio": round(med["ours"] / med["transformers"], 2), "load_avg": round(result["load"], 1),
                   "ours_range": (round(min(s["ours"]), 1), round(max(s["ours"]), 1)),
                   "transformers_range": (round(min(s["transformers"]), 1), round(max(s["transformers"]), 1))}
            if not args.no_memory:
                row["ours_peak_mib"] = round(peak_memory(which, "ours", batch, args.new_tokens, args.threads))
                row["transformers_peak_mib"] = round(
                    peak_memory(which, "transformers", batch, args.new_tokens, args.threads))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| model | batch | ours tok/s (min-max) | transformers tok/s (min-max) | ratio | peak MiB ours / theirs |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        mem = f"{r.get('ours_peak_mib', '-')} / {r.get('transformers_peak_mib', '-')}"
        print(f"| {r['model']} | {r['batch']} | {r['ours_tok_s']} {r['ours_range']} | "
              f"{r['transformers_tok_s']} {r['transformers_range']} | {r['ratio']}x | {mem} |")


if __name__ == "__main__":
    main()
