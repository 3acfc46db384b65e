"""Peak memory of loading a checkpoint and of generating, ours against `transformers`, one fresh process per case.

Every number is a resident-set size (Linux ``/proc/self/status``). A case runs in its own child process that
imports everything first (Python, torch, transformers, the package), then takes the resident set as its
baseline, resets the kernel's peak counter (``/proc/self/clear_refs``) and does just the measured work:

* **load**: load one checkpoint. ``peak - baseline`` is what loading needed at its worst, reported as a multiple
  of the loaded weights' bytes (1.0x = exactly one copy of the weights; the goal is to stay near it).
  ``after - baseline`` is what the loaded model keeps.
* **generate**: load (not measured), then set our model up for decoding (``prepare_for_decoding``) and
  generate greedily. ``peak - after load`` is what generating needs on top of the loaded model: the KV cache,
  activations, logits and whatever the layout change costs.

The GPT-2 124M checkpoints (random weights) are written once, before any child starts, so no child builds or
saves a model before it measures: a single ``model.safetensors`` written by ``save_hf_checkpoint`` and a sharded
copy (``model.safetensors.index.json``) written by ``transformers`` ``save_pretrained``. SmolLM2-135M-Instruct is
the real Q4_1 GGUF file (``resolve("smollm2-135m-instruct")``), dequantized to fp32 by both sides.

    python measure_memory.py                          # loading and generating, every case
    python measure_memory.py --what load
    python measure_memory.py --what generate --batches 1 8 --new-tokens 200

Needs Linux (``/proc``) for the peak reset; elsewhere it stops with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MiB = 2**20
PROMPT_TOKENS = 16


def _status(field: str) -> int:
    """One ``/proc/self/status`` field (``VmRSS``, ``VmHWM``, ``RssAnon``, ``RssFile``) in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _reset_peak() -> None:
    """Set the kernel's peak resident set (VmHWM) to the current resident set."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _settle() -> int:
    """Collect garbage and return the resident set in bytes."""
    import gc

    gc.collect()
    return _status("VmRSS")


def weight_bytes(model) -> int:
    """Bytes of the model's parameters, each storage counted once (tied weights share one)."""
    storages = {}
    for p in model.parameters():
        s = p.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
    return sum(storages.values())


def kv_cache_bytes(cfg, batch: int, length: int, dtype) -> int:
    """Bytes of keys and values for ``length`` tokens of ``batch`` rows (what a preallocated cache holds)."""
    import torch

    per_token = 2 * cfg.n_layers * cfg.resolved_kv_groups * cfg.resolved_head_dim * torch.tensor([], dtype=dtype).element_size()
    return per_token * batch * length


# ---------------------------------------------------------------------------------------------------------------
# the child: one case


def _load(impl: str, source: dict, dtype_name: str):
    import torch

    dtype = getattr(torch, dtype_name)
    if impl == "ours":
        if source["format"] == "gguf":
            from llms_from_scratch.models import load_gguf

            return load_gguf(source["path"], dtype=dtype)
        from llms_from_scratch.models import load_hf_checkpoint

        return load_hf_checkpoint(source["path"], dtype=dtype)
    from transformers import AutoModelForCausalLM

    if source["format"] == "gguf":
        path = Path(source["path"])
        return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype,
                                                    attn_implementation="eager").eval()
    return AutoModelForCausalLM.from_pretrained(source["path"], dtype=dtype, attn_implementation="eager").eval()


def _generate(impl: str, model, batch: int, new_tokens: int):
    import torch

    vocab = model.cfg.vocab_size if impl == "ours" else model.config.vocab_size
    ids = torch.randint(100, min(vocab, 20000), (batch, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0))
    if impl == "ours":
        from llms_from_scratch.generation import generate

        return generate(model, ids, new_tokens)
    with torch.inference_mode():
        return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None)


def child(spec: dict) -> dict:
    import torch
    import transformers  # noqa: F401  (imported before the baseline: both sides pay for it alike)
    from transformers import AutoModelForCausalLM  # noqa: F401

    import llms_from_scratch.generation  # noqa: F401
    import llms_from_scratch.models  # noqa: F401
    from llms_from_scratch.files.gguf import cached_reader
    from llms_from_scratch.nn import prepare_for_decoding

    torch.set_num_threads(spec["threads"])
    impl, source = spec["impl"], spec["source"]
    baseline = _settle()
    _reset_peak()
    model = _load(impl, source, spec["dtype"])
    load_peak = _status("VmHWM")
    after_load = _settle()
    out = {"baseline": baseline, "load_peak": load_peak, "after_load": after_load,
           "after_load_file": _status("RssFile"), "weights": weight_bytes(model),
           "gguf_readers_cached": cached_reader.cache_info().currsize}
    if spec["kind"] == "generate":
        _reset_peak()
        if impl == "ours":
            # returns a new model that shares the weights (fused projections are extra copies)
            model = prepare_for_decoding(model, batch_size=spec["batch"])
        out["prepare_peak"] = _status("VmHWM")
        out["after_prepare"] = _settle()
        out["weights_after_prepare"] = weight_bytes(model)
        _reset_peak()
        _generate(impl, model, spec["batch"], spec["new_tokens"])
        out["generate_peak"] = _status("VmHWM")
    return out


def run_child(spec: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"case {spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------------
# the parent: checkpoints once, then one child per case


def write_gpt2_checkpoints(folder: Path) -> dict[str, dict]:
    """GPT-2 124M with random weights: one safetensors file (ours) and a sharded copy (transformers)."""
    single, sharded = folder / "gpt2-124m", folder / "gpt2-124m-sharded"
    if not (single / "model.safetensors").is_file():
        import torch

        from llms_from_scratch.models import build_model, get_config, save_hf_checkpoint

        torch.manual_seed(123)
        save_hf_checkpoint(build_model(get_config("gpt2-124m")), single)
    if not (sharded / "model.safetensors.index.json").is_file():
        from transformers import AutoModelForCausalLM

        AutoModelForCausalLM.from_pretrained(single).save_pretrained(sharded, max_shard_size="100MB")
    return {"gpt2": {"format": "hf", "path": str(single)}, "gpt2-sharded": {"format": "hf", "path": str(sharded)}}


def file_bytes(source: dict) -> int:
    path = Path(source["path"])
    files = [path] if path.is_file() else list(path.glob("*.safetensors"))
    return sum(f.stat().st_size for f in files)


def _mib(n: float) -> str:
    return f"{n / MiB:.0f}"


def load_table(sources: dict[str, dict], threads: int) -> list[str]:
    cases = [("gpt2", "float32"), ("gpt2", "bfloat16"), ("gpt2-sharded", "float32"), ("gpt2-sharded", "bfloat16"),
             ("smollm2", "float32")]
    lines = ["| checkpoint | file MiB | load as | impl | weights MiB | peak growth MiB (x weights) "
             "| kept after load MiB (x weights) |", "|---|---|---|---|---|---|---|"]
    for name, dtype in cases:
        for impl in ("ours", "transformers"):
            r = run_child({"kind": "load", "impl": impl, "source": sources[name], "dtype": dtype, "threads": threads})
            grow, kept = r["load_peak"] - r["baseline"], r["after_load"] - r["baseline"]
            row = (f"| {name} | {_mib(file_bytes(sources[name]))} | {dtype} | {impl} | {_mib(r['weights'])} | "
                   f"{_mib(grow)} ({grow / r['weights']:.2f}x) | {_mib(kept)} ({kept / r['weights']:.2f}x) |")
            print(row, json.dumps(r), sep="\n", file=sys.stderr, flush=True)
            lines.append(row)
    return lines


def generate_table(sources: dict[str, dict], batches: list[int], new_tokens: int, threads: int) -> list[str]:
    import torch

    from llms_from_scratch.models import get_config, read_gguf_config

    configs = {"gpt2": get_config("gpt2-124m"), "smollm2": read_gguf_config(sources["smollm2"]["path"])}
    lines = ["| model | batch | impl | weights MiB | KV cache MiB | RSS after load MiB | layout change MiB "
             "| generating peak above RSS after load MiB |", "|---|---|---|---|---|---|---|---|"]
    for name in ("gpt2", "smollm2"):
        for batch in batches:
            kv = kv_cache_bytes(configs[name], batch, PROMPT_TOKENS + new_tokens, torch.float32)
            for impl in ("ours", "transformers"):
                r = run_child({"kind": "generate", "impl": impl, "source": sources[name], "dtype": "float32",
                               "batch": batch, "new_tokens": new_tokens, "threads": threads})
                layout = r["after_prepare"] - r["after_load"]
                above = max(r["prepare_peak"], r["generate_peak"]) - r["after_load"]
                row = (f"| {name} | {batch} | {impl} | {_mib(r['weights'])} | {kv / MiB:.1f} | "
                       f"{_mib(r['after_load'])} | {_mib(layout)} | {_mib(above)} |")
                print(row, json.dumps(r), sep="\n", file=sys.stderr, flush=True)
                lines.append(row)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--what", choices=["load", "generate", "all"], default="all")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", help="folder for the GPT-2 checkpoints (kept; default: a temporary folder)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if not Path("/proc/self/clear_refs").exists():
        sys.exit("measure_memory.py needs Linux: it reads /proc/self/status and resets the peak via clear_refs")

    import torch
    import transformers

    from llms_from_scratch.models.pretrained import resolve

    with tempfile.TemporaryDirectory(prefix="measure-memory-") as tmp:
        sources = write_gpt2_checkpoints(Path(args.workdir or tmp))
        sources["smollm2"] = {"format": "gguf", "path": str(resolve("smollm2-135m-instruct")[1])}
        print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} thread(s), "
              f"{os.cpu_count()} CPUs; MiB = 2**20 bytes\n")
        if args.what in ("load", "all"):
            print("\n".join(load_table(sources, args.threads)) + "\n", flush=True)
        if args.what in ("generate", "all"):
            print(f"generating: greedy, {args.new_tokens} new tokens from {PROMPT_TOKENS}, fp32\n")
            print("\n".join(generate_table(sources, args.batches, args.new_tokens, args.threads)))


if __name__ == "__main__":
    main()
