"""Results of one recipe run by several implementations over several seeds, as the reference comparisons in
``ch07/08_ppo/compare_trl_ppo.py`` and ``ch07/09_grpo/compare_trl_grpo.py`` keep them: one JSON file per
implementation and seed (``results_<implementation>_seed<seed>.json``), gathered again into a table.

Each file records the machine it ran on (CPU model, PyTorch threads, load average at the end), the library
versions, the hyperparameters, the evaluation before training (``before``) and the run itself (``run``: the
evaluation after training under ``after``, per-step training curves, ``seconds``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_path
from ..nn.autotune import cpu_description

RESULT_GLOB = "results_*_seed*.json"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or "n/a" where the system keeps none."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def save_run(out: str | os.PathLike, implementation: str, seed: int, run: dict[str, Any], *, versions: str,
             samples: int, hyperparameters: dict[str, Any], before: dict[str, float]) -> Path:
    """Write one run's result file (atomically, so a table never reads half a file)."""
    path = Path(out) / f"results_{implementation}_seed{seed}.json"
    record = {"versions": versions, "cpu": cpu_description()[0], "load_average": load_average(),
              "threads": torch.get_num_threads(), "seed": seed, "samples": samples,
              "hyperparameters": hyperparameters, "before": before, "run": run}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return path


def collect_runs(out: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per implementation: the fields its files share (from the first), with ``seeds`` and ``runs`` in seed
    order."""
    def key(path: Path) -> tuple[str, int]:  # results_<implementation>_seed<seed>
        implementation, seed = path.stem.removeprefix("results_").rsplit("_seed", 1)
        return implementation, int(seed)

    runs: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(out).glob(RESULT_GLOB), key=key):
        record = json.loads(path.read_text(encoding="utf-8"))
        entry = runs.setdefault(key(path)[0], {**record, "seeds": [], "runs": []})
        entry["seeds"].append(record["seed"])
        entry["runs"].append(record["run"])
    return runs


def mean_std(values: list[float]) -> str:
    """``mean ± sample standard deviation`` with three decimals (just the value for one run)."""
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def print_runs_table(out: str | os.PathLike, method: str, curve: tuple[str, str]) -> None:
    """Print every run in ``out``: greedy pass@1, mean reward (sampled pass@1) and pass@8 after training, the mean
    of the last 10 training rewards and of the last 10 values of the curve ``curve = (label, key in run)``, then
    mean ± std over the seeds per implementation."""
    runs = collect_runs(out)
    if not runs:
        raise SystemExit(f"no {RESULT_GLOB} in {out}; run the comparison first")
    label, curve_key = curve
    first = next(iter(runs.values()))
    before = first["before"]
    print(f"\n{method} on {first['samples']} sampled completions per run, 500 held-out test problems; after SFT: "
          f"greedy pass@1 {before['greedy_pass@1']:.3f}, mean reward (sampled pass@1, T=1) "
          f"{before['sampled_pass@1']:.3f}")
    width = max(len(label), 12) + 2
    print(f"{'impl':<6}{'seed':>6}{'greedy pass@1':>15}{'mean reward':>13}{'pass@8':>9}"
          f"{'train reward (last 10)':>24}{label + ' (last 10)':>{width + 10}}{'seconds':>9}")
    for name, record in runs.items():
        for seed, r in zip(record["seeds"], record["runs"]):
            last, values = r["rewards"][-10:], r[curve_key][-10:]
            print(f"{name:<6}{seed:>6}{r['after']['greedy_pass@1']:>15.3f}{r['after']['sampled_pass@1']:>13.3f}"
                  f"{r['after']['sampled_pass@8']:>9.3f}{sum(last) / len(last):>24.3f}"
                  f"{sum(values) / len(values):>{width + 10}.3f}{r['seconds']:>9.0f}")
    for name, record in runs.items():
        for key, title in (("greedy_pass@1", "greedy pass@1"), ("sampled_pass@1", "mean reward")):
            print(f"{name:<6} mean ± std over seeds {record['seeds']}, {title}: "
                  f"{mean_std([r['after'][key] for r in record['runs']])}")
        print(f"{name:<6} {record['versions']}; {record['cpu']}, {record['threads']} torch thread(s), load average "
              f"at the end {record['load_average']}")


def comparison_parser(description: str, method: str, default_steps: int, default_out: str) -> argparse.ArgumentParser:
    """The command line both comparison scripts share: seeds, steps, output folder, one implementation only, or
    just the table of what is there."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=None,
                        help=f"{method} steps (default: the notebook's {default_steps})")
    parser.add_argument("--out", default=default_out, help="folder for sft.pth and the results")
    parser.add_argument("--only", choices=["ours", "trl"], default=None,
                        help="run one implementation (two processes can then run side by side)")
    parser.add_argument("--table", action="store_true", help="only print the table of the results in --out")
    return parser


def run_seeds(out: str | os.PathLike, runners: dict[str, Callable[[int], dict[str, Any]]], seeds: list[int],
              only: str | None, *, versions: dict[str, str], samples: int, hyperparameters: dict[str, Any],
              before: dict[str, float]) -> None:
    """Run ``runners[name](seed)`` for each implementation (or ``only`` one) and seed, saving each result as it
    comes (:func:`save_run`; ``versions[name]`` names the libraries it ran on)."""
    for name in [only] if only else list(runners):
        for seed in seeds:
            run = runners[name](seed)
            print(f"{name} seed {seed}: greedy pass@1 {run['after']['greedy_pass@1']:.3f}, "
                  f"{run['seconds']:.0f} s, load {load_average()}", flush=True)
            save_run(out, name, seed, run, versions=versions[name], samples=samples,
                     hyperparameters=hyperparameters, before=before)
