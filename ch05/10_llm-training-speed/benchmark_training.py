"""Training-step throughput of chapter 4's ``GPTModel``: the speed levers, and a comparison with ``transformers``.

    python benchmark_training.py                      # 6 layers x 384 wide, batch 4 x 256 (about 10 minutes here)
    python benchmark_training.py --config 124m        # GPT-2 small's shape
    python benchmark_training.py --rounds 3 --steps 1 # shorter

One *training step* is: forward pass, cross-entropy over all logits, backward pass, AdamW step. Throughput is
``batch_size * seq_len * steps / seconds`` for blocks of ``--steps`` steps. Every case below is measured in the
same process, one block per case per round, so that a slow moment of a shared machine hits all cases alike; the
order of the cases is reversed every other round, and ratios are taken per round between neighbouring blocks.

Cases (all on the same batch of random token ids, all starting from the same weights):

- ours: the book's ``GPTModel`` (unchanged) trained the package's way, with the output head fused into the loss
  (``llms_from_scratch.training.fused_loss.lm_loss``: no full logits matrix): eager fp32 | bf16 autocast | fused AdamW |
  torch.compile | compile + bf16 | all combined
- ours plain loss: the same model with chapter 5's loss (logits, then ``F.cross_entropy``): eager and compiled,
  fp32 and bf16
- transformers ``GPT2LMHeadModel`` with our weights copied in, with chapter 5's loss on its logits: eager fp32 |
  bf16 autocast | compile | compile + bf16

Both models use the plain ``torch.optim.AdamW`` (lr 4e-4, weight decay 0.1, the book's settings) unless a case
says "fused". ``torch.compile`` compiles the model (ours: the model up to its output head, whose hidden states
feed the eager fused loss) or the model plus loss (the plain-loss cases and transformers); the backward runs the compiled backward graph; the
optimizer step stays eager. The glibc allocator lever needs environment variables set before the process starts,
so it is measured in child processes (A B A B ...), ours eager fp32 only.

Results go to ``results/training_speed_<config>.json`` and ``.png`` beside this script (``--out-dir`` to change).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from llms_from_scratch.ch04 import GPT_CONFIG_124M, GPTModel
from llms_from_scratch.training.fused_loss import gpt_hidden_states, lm_loss

HERE = Path(__file__).resolve().parent

# dropout 0 in both models so that the comparison and the equality test are deterministic; qkv_bias on because
# GPT-2's (and transformers') attention projections have biases
CONFIGS: dict[str, dict[str, Any]] = {
    "small": {"vocab_size": 50257, "context_length": 256, "emb_dim": 384, "n_heads": 6, "n_layers": 6,
              "drop_rate": 0.0, "qkv_bias": True},
    "124m": {**GPT_CONFIG_124M, "drop_rate": 0.0, "qkv_bias": True},
    "tiny": {"vocab_size": 50257, "context_length": 64, "emb_dim": 64, "n_heads": 4, "n_layers": 2,
             "drop_rate": 0.0, "qkv_bias": True},
}

LR, WEIGHT_DECAY = 4e-4, 0.1
MALLOC_TUNED = {"MALLOC_MMAP_THRESHOLD_": "10000000000", "MALLOC_TRIM_THRESHOLD_": "10000000000"}


# ----------------------------------------------------------------------------------------------------------------
# models and the training step


class HFLogits(nn.Module):
    """Wrap ``GPT2LMHeadModel`` so that, like ``GPTModel``, calling it on token ids returns the logits tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=in_idx, use_cache=False).logits


def build_ours(cfg: dict[str, Any], seed: int = 123) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(cfg)


def _import_transformers():
    # transformers imports tqdm.auto, which warns inside notebooks without ipywidgets; the warning is noise here
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import transformers
    return transformers


def build_transformers(cfg: dict[str, Any]) -> nn.Module:
    """A ``GPT2LMHeadModel`` of the same shape as ``GPTModel(cfg)`` (untied output head, like ours), wrapped."""
    transformers = _import_transformers()

    if not cfg["qkv_bias"]:
        raise ValueError("GPT2LMHeadModel always has query/key/value biases; use a config with qkv_bias=True")
    hf_cfg = transformers.GPT2Config(
        vocab_size=cfg["vocab_size"], n_positions=cfg["context_length"], n_embd=cfg["emb_dim"],
        n_layer=cfg["n_layers"], n_head=cfg["n_heads"], resid_pdrop=cfg["drop_rate"], embd_pdrop=cfg["drop_rate"],
        attn_pdrop=cfg["drop_rate"], layer_norm_epsilon=1e-5, activation_function="gelu_new",
        tie_word_embeddings=False,
    )
    return HFLogits(transformers.GPT2LMHeadModel(hf_cfg))


@torch.no_grad()
def copy_weights_to_transformers(ours: GPTModel, hf: HFLogits) -> None:
    """Copy every parameter of ``ours`` into the wrapped ``GPT2LMHeadModel``.

    transformers' GPT-2 stores its projections as ``Conv1D`` with weights of shape (in, out), the transpose of
    ``nn.Linear``'s (out, in); query, key and value live side by side in one ``c_attn`` matrix.
    """
    t = hf.model.transformer
    copies = [(t.wte.weight, ours.tok_emb.weight), (t.wpe.weight, ours.pos_emb.weight),
              (t.ln_f.weight, ours.final_norm.scale), (t.ln_f.bias, ours.final_norm.shift),
              (hf.model.lm_head.weight, ours.out_head.weight)]
    for block, h in zip(ours.trf_blocks, t.h, strict=True):
        att = block.att
        qkv_weight = torch.cat([att.W_query.weight, att.W_key.weight, att.W_value.weight], dim=0).T  # (in, 3*out)
        qkv_bias = torch.cat([att.W_query.bias, att.W_key.bias, att.W_value.bias])
        copies += [
            (h.ln_1.weight, block.norm1.scale), (h.ln_1.bias, block.norm1.shift),
            (h.attn.c_attn.weight, qkv_weight), (h.attn.c_attn.bias, qkv_bias),
            (h.attn.c_proj.weight, att.out_proj.weight.T), (h.attn.c_proj.bias, att.out_proj.bias),
            (h.ln_2.weight, block.norm2.scale), (h.ln_2.bias, block.norm2.shift),
            (h.mlp.c_fc.weight, block.ff.layers[0].weight.T), (h.mlp.c_fc.bias, block.ff.layers[0].bias),
            (h.mlp.c_proj.weight, block.ff.layers[2].weight.T), (h.mlp.c_proj.bias, block.ff.layers[2].bias),
        ]
    n_hf = sum(1 for _ in hf.parameters())
    if len(copies) != n_hf:
        raise RuntimeError(f"copied {len(copies)} tensors but GPT2LMHeadModel has {n_hf} parameters")
    for dst, src in copies:
        if dst.shape != src.shape:
            raise RuntimeError(f"shape mismatch while copying: {tuple(src.shape)} -> {tuple(dst.shape)}")
        dst.copy_(src)


def make_optimizer(model: nn.Module, fused: bool = False) -> torch.optim.Optimizer:
    # fused=False leaves the choice to PyTorch: on CPU that is the per-parameter ("for-loop") implementation
    return torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, fused=True if fused else None)


def loss_of(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every position, as chapter 5's ``calc_loss_batch`` computes it (the plain loss)."""
    logits = model(inputs)  # (batch, num_tokens, vocab_size)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def compiled_lm_loss(model: nn.Module) -> Callable[..., torch.Tensor]:
    """``lm_loss`` with the model's hidden states computed by ``torch.compile``: the compiled part of the model
    (everything up to the output head) feeds the eager fused loss."""
    hidden_states = torch.compile(functools.partial(gpt_hidden_states, model))
    return lambda _model, inputs, targets: lm_loss(_model, inputs, targets, hidden_states=hidden_states)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor,
               bf16: bool = False, loss_fn: Callable[..., torch.Tensor] = loss_of) -> float:
    """One training step; returns the loss before the update. ``loss_fn(model, inputs, targets)`` gives the loss:
    ``loss_of`` (plain), ``lm_loss`` (fused head), or compiled versions of either."""
    optimizer.zero_grad(set_to_none=True)
    # autocast runs matmuls in bf16 and keeps precision-sensitive ops (softmax, norms, the loss) in fp32
    with torch.autocast(device_type=inputs.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = loss_fn(model, inputs, targets)
    loss.backward()
    optimizer.step()
    return loss.item()


def random_batch(cfg: dict[str, Any], batch_size: int, seq_len: int, seed: int = 0,
                 device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    if seq_len > cfg["context_length"]:
        raise ValueError(f"seq_len={seq_len} exceeds the config's context_length={cfg['context_length']}")
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg["vocab_size"], (batch_size, seq_len + 1), generator=g)
    return ids[:, :-1].to(device), ids[:, 1:].to(device)  # targets are the inputs shifted by one


# ----------------------------------------------------------------------------------------------------------------
# measuring


@dataclass
class Case:
    """One way of running the training step; ``model`` and ``optimizer`` may be shared with other cases."""

    name: str
    family: str  # "ours", "ours plain loss" or "transformers"
    model: nn.Module
    optimizer: torch.optim.Optimizer
    bf16: bool = False
    compiled: bool = False
    loss_fn: Callable[..., torch.Tensor] = loss_of
    tokens_per_s: list[float] = field(default_factory=list)
    foreign_load: list[float] = field(default_factory=list)
    first_step_s: float = float("nan")
    losses: list[float] = field(default_factory=list)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine since boot, from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def foreign_load_meter(out: list[float]) -> Iterator[None]:
    """Append the CPU cores other processes kept busy while the block ran (0 = a quiet machine; NaN if unknown)."""
    before, own_before, start = _busy_jiffies(), _own_cpu_s(), time.perf_counter()
    yield
    after, own_after, elapsed = _busy_jiffies(), _own_cpu_s(), time.perf_counter() - start
    if before is None or after is None or after[1] == before[1]:
        out.append(float("nan"))
        return
    cores = os.cpu_count() or 1
    busy_s = (after[0] - before[0]) / (after[1] - before[1]) * cores * elapsed  # core-seconds of work on the box
    out.append(max(0.0, busy_s - (own_after - own_before)) / elapsed)


def cpu_pressure() -> str:
    try:
        with open("/proc/pressure/cpu") as f:
            return f.readline().strip()
    except OSError:
        return "unavailable"


def measure(cases: list[Case], inputs: torch.Tensor, targets: torch.Tensor, rounds: int, steps: int, warmup: int,
            log: Callable[[str], None] = print) -> None:
    """Fill each case's ``tokens_per_s``: ``rounds`` blocks of ``steps`` timed steps, cases alternating."""
    n_tokens = inputs.numel()
    for case in cases:
        for i in range(warmup):  # first calls allocate, pick kernels and (compiled cases) compile
            start = time.perf_counter()
            case.losses.append(train_step(case.model, case.optimizer, inputs, targets, case.bf16, case.loss_fn))
            _sync(inputs.device)
            if i == 0:
                case.first_step_s = time.perf_counter() - start
        log(f"  warmed up {case.name:<34} first step {case.first_step_s:6.1f} s")
    for r in range(rounds):
        order = cases if r % 2 == 0 else cases[::-1]  # reversing cancels any "who goes first" advantage
        for case in order:
            with foreign_load_meter(case.foreign_load):
                start = time.perf_counter()
                for _ in range(steps):
                    case.losses.append(train_step(case.model, case.optimizer, inputs, targets, case.bf16,
                                                  case.loss_fn))
                _sync(inputs.device)
                elapsed = time.perf_counter() - start
            case.tokens_per_s.append(n_tokens * steps / elapsed)
        others = statistics.median(c.foreign_load[-1] for c in cases)
        shown = ", ".join(f"{c.name} {c.tokens_per_s[-1]:.0f}" for c in cases[:4]) + (" ..." if len(cases) > 4 else "")
        log(f"  round {r + 1}/{rounds}: {shown} tok/s; other processes kept {others:.1f} cores busy")


def build_cases(cfg: dict[str, Any], device: torch.device, compile: bool = True,
                compare: bool = True) -> list[Case]:
    """Our model with every lever, with the fused and the plain loss, and (``compare``) transformers' GPT-2 with
    our weights copied in."""
    ours = build_ours(cfg).to(device)
    plain, fused = make_optimizer(ours), make_optimizer(ours, fused=True)
    cases = [Case("ours eager fp32", "ours", ours, plain, loss_fn=lm_loss),
             Case("ours eager bf16", "ours", ours, plain, bf16=True, loss_fn=lm_loss),
             Case("ours plain loss eager fp32", "ours plain loss", ours, plain),
             Case("ours plain loss eager bf16", "ours plain loss", ours, plain, bf16=True),
             Case("ours eager fp32 fused AdamW", "ours", ours, fused, loss_fn=lm_loss)]
    if compare:
        hf = build_transformers(cfg).to(device)
        copy_weights_to_transformers(ours, hf)
        hf_opt = make_optimizer(hf)
        cases.insert(1, Case("transformers eager fp32", "transformers", hf, hf_opt))
        cases.insert(3, Case("transformers eager bf16", "transformers", hf, hf_opt, bf16=True))
    if compile:
        # one compiled callable per model and loss; dynamo keeps one graph per autocast state (fp32 / bf16)
        ours_compiled, ours_plain_compiled = compiled_lm_loss(ours), torch.compile(loss_of)
        cases += [Case("ours compiled fp32", "ours", ours, plain, compiled=True, loss_fn=ours_compiled)]
        if compare:
            hf_compiled = torch.compile(loss_of)
            cases += [Case("transformers compiled fp32", "transformers", hf, hf_opt, compiled=True,
                           loss_fn=hf_compiled)]
        cases += [Case("ours compiled bf16", "ours", ours, plain, bf16=True, compiled=True, loss_fn=ours_compiled)]
        if compare:
            cases += [Case("transformers compiled bf16", "transformers", hf, hf_opt, bf16=True, compiled=True,
                           loss_fn=hf_compiled)]
        cases += [Case("ours plain loss compiled fp32", "ours plain loss", ours, plain, compiled=True,
                       loss_fn=ours_plain_compiled),
                  Case("ours plain loss compiled bf16", "ours plain loss", ours, plain, bf16=True, compiled=True,
                       loss_fn=ours_plain_compiled),
                  Case("ours all: compiled bf16 fused AdamW", "ours", ours, fused, bf16=True, compiled=True,
                       loss_fn=ours_compiled)]
    return cases


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2: the profiler's C++ layer writes start/stop markers there, past ``sys.stderr``."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profile_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor,
                 bf16: bool = False, top: int = 12,
                 loss_fn: Callable[..., torch.Tensor] = loss_of) -> list[tuple[str, float, float]]:
    """Where one (warm) training step spends its time: ``(op name, self ms, share of the step)``, largest first."""
    from torch.profiler import ProfilerActivity, profile

    train_step(model, optimizer, inputs, targets, bf16, loss_fn)  # warm-up: the profile shows the steady state
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step(model, optimizer, inputs, targets, bf16, loss_fn)
    events = [(e.key, e.self_cpu_time_total / 1e3) for e in prof.key_averages()]
    total = sum(ms for _, ms in events)
    events.sort(key=lambda e: -e[1])
    return [(name, ms, ms / total) for name, ms in events[:top]]


# ----------------------------------------------------------------------------------------------------------------
# the allocator lever, in child processes


def _allocator_worker(config: str, batch_size: int, seq_len: int, steps: int) -> None:
    cfg = CONFIGS[config]
    model = build_ours(cfg)
    opt = make_optimizer(model)
    inputs, targets = random_batch(cfg, batch_size, seq_len)
    train_step(model, opt, inputs, targets, loss_fn=lm_loss)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, opt, inputs, targets, loss_fn=lm_loss)
    print(json.dumps({"tokens_per_s": inputs.numel() * steps / (time.perf_counter() - start)}))


def measure_allocator(config: str, batch_size: int, seq_len: int, rounds: int, steps: int,
                      log: Callable[[str], None] = print) -> dict[str, list[float]]:
    """Eager fp32 tokens/s with glibc's default allocator settings and with ``MALLOC_TUNED``, alternating."""
    results: dict[str, list[float]] = {"default": [], "tuned": []}
    base_env = {k: v for k, v in os.environ.items() if k not in MALLOC_TUNED}
    for r in range(rounds):
        for setting in (("default", "tuned") if r % 2 == 0 else ("tuned", "default")):
            env = base_env | (MALLOC_TUNED if setting == "tuned" else {})
            cmd = [sys.executable, str(Path(__file__).resolve()), "--allocator-worker", "--config", config,
                   "--batch-size", str(batch_size), "--seq-len", str(seq_len), "--steps", str(steps)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            results[setting].append(json.loads(out.strip().splitlines()[-1])["tokens_per_s"])
        log(f"  allocator round {r + 1}/{rounds}: default {results['default'][-1]:.0f}, "
            f"tuned {results['tuned'][-1]:.0f} tok/s")
    return results


# ----------------------------------------------------------------------------------------------------------------
# the whole benchmark, its table, plot and JSON


def machine_info() -> dict[str, Any]:
    transformers = _import_transformers()

    cpu = "unknown"
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    return {
        "cpu": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_flags": sorted(f for f in flags if "bf16" in f or f.startswith("amx")),
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "malloc_env": {k: os.environ[k] for k in MALLOC_TUNED if k in os.environ},
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_benchmark(config: str = "small", batch_size: int = 4, seq_len: int = 256, rounds: int = 5, steps: int = 2,
                  warmup: int = 2, compile: bool = True, compare: bool = True, allocator_rounds: int = 3,
                  device: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every case and return a JSON-ready dict (settings, machine, per-case numbers, ratios)."""
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; choose one of {sorted(CONFIGS)}")
    cfg = CONFIGS[config]
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    inputs, targets = random_batch(cfg, batch_size, seq_len, device=dev)
    cases = build_cases(cfg, dev, compile=compile, compare=compare)
    n_params = sum(p.numel() for p in cases[0].model.parameters())
    log(f"config {config}: {n_params / 1e6:.1f}M parameters, batch {batch_size} x {seq_len} tokens, "
        f"{len(cases)} cases, {rounds} rounds of {steps} steps after {warmup} warm-up steps, device {dev}")
    pressure_before = cpu_pressure()
    start = time.perf_counter()
    measure(cases, inputs, targets, rounds, steps, warmup, log)
    allocator = None
    if allocator_rounds > 0 and dev.type == "cpu" and sys.platform.startswith("linux"):
        allocator = measure_allocator(config, batch_size, seq_len, allocator_rounds, max(steps, 2), log)

    by_name = {c.name: c for c in cases}
    ratios = {}
    for family, prefix in (("ours", ""), ("ours plain loss", "plain loss ")):
        for mode in ("eager fp32", "eager bf16", "compiled fp32", "compiled bf16"):
            ours, peer = by_name.get(f"{family} {mode}"), by_name.get(f"transformers {mode}")
            if ours and peer:
                # blocks of the same round ran close together; the median of the per-round ratios resists drift
                per_round = [a / b for a, b in zip(ours.tokens_per_s, peer.tokens_per_s)]
                ratios[prefix + mode] = summarize(per_round) | {"per_round": per_round}
    return {
        "config": config, "model_config": cfg, "parameters": n_params, "batch_size": batch_size, "seq_len": seq_len,
        "rounds": rounds, "steps_per_round": steps, "warmup_steps": warmup, "device": str(dev),
        "optimizer": f"torch.optim.AdamW(lr={LR}, weight_decay={WEIGHT_DECAY}); fused only where the case says so",
        "machine": machine_info(), "cpu_pressure_before": pressure_before, "cpu_pressure_after": cpu_pressure(),
        "wall_s": time.perf_counter() - start,
        "cases": [{"name": c.name, "family": c.family, "bf16": c.bf16, "compiled": c.compiled,
                   "fused_adamw": bool(c.optimizer.defaults.get("fused")), "first_step_s": c.first_step_s,
                   "tokens_per_s": c.tokens_per_s, **summarize(c.tokens_per_s),
                   "foreign_load_cores": c.foreign_load, "first_loss": c.losses[0], "last_loss": c.losses[-1]}
                  for c in cases],
        "ratios_ours_over_transformers": ratios,
        "allocator": None if allocator is None else {k: v | {"values": allocator[k]} for k, v in
                                                     {k: summarize(v) for k, v in allocator.items()}.items()},
    }


def format_table(results: dict[str, Any]) -> str:
    cases = results["cases"]
    base = next(c for c in cases if c["name"] == "ours eager fp32")["median"]
    lines = [f"{'case':<38} {'median tok/s':>12} {'min-max':>13} {'vs ours eager fp32':>19} "
             f"{'others busy':>11} {'1st step':>9}",
             "-" * 107]
    for c in cases:
        load = statistics.median(c["foreign_load_cores"])
        lines.append(f"{c['name']:<38} {c['median']:>12,.0f} {c['min']:>6,.0f}-{c['max']:<6,.0f} "
                     f"{c['median'] / base:>18.2f}x {load:>7.1f} cores {c['first_step_s']:>7.1f} s")
    if results["ratios_ours_over_transformers"]:
        lines += ["", "ours / transformers (median of per-round ratios, min-max; goal >= 1.10):"]
        for mode, r in results["ratios_ours_over_transformers"].items():
            lines.append(f"  {mode:<26} {r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})")
    if results["allocator"]:
        a = results["allocator"]
        lines += ["", "glibc allocator, ours eager fp32 in child processes:",
                  f"  default {a['default']['median']:,.0f} tok/s ({a['default']['min']:,.0f}-"
                  f"{a['default']['max']:,.0f}); MALLOC_MMAP/TRIM_THRESHOLD_=1e10 {a['tuned']['median']:,.0f} "
                  f"tok/s ({a['tuned']['min']:,.0f}-{a['tuned']['max']:,.0f}): "
                  f"{a['tuned']['median'] / a['default']['median']:.2f}x"]
    return "\n".join(lines)


def plot_results(results: dict[str, Any], path: str | Path | None = None):
    """Horizontal bars of median tokens/s with min-max whiskers; saved to ``path`` when given."""
    import matplotlib

    if path is not None and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # scripts write files; a notebook keeps its inline backend
    import matplotlib.pyplot as plt

    cases = results["cases"][::-1]  # first case on top
    medians = [c["median"] for c in cases]
    errors = [[c["median"] - c["min"] for c in cases], [c["max"] - c["median"] for c in cases]]
    palette = {"ours": "tab:blue", "ours plain loss": "tab:green", "transformers": "tab:orange"}
    colors = [palette[c["family"]] for c in cases]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(cases) + 1.2))
    ax.barh([c["name"] for c in cases], medians, xerr=errors, color=colors, capsize=3)
    ax.set_xlabel("training tokens / second (median, min-max)")
    ax.set_title(f"config {results['config']}, batch {results['batch_size']} x {results['seq_len']}, "
                 f"{results['machine']['cpu_cores']} CPU cores, torch {results['machine']['torch']}")
    fig.tight_layout()
    if path is not None:
        _atomic_write(Path(path), lambda p: fig.savefig(p, dpi=110, format="png"))
    return fig


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_json(results: dict[str, Any], path: str | Path) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(results, indent=1) + "\n")

    _atomic_write(Path(path), write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5, help="timed blocks per case (alternating)")
    parser.add_argument("--steps", type=int, default=2, help="training steps per timed block")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per case before timing")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile cases")
    parser.add_argument("--no-compare", action="store_true", help="skip transformers")
    parser.add_argument("--allocator-rounds", type=int, default=3, help="0 skips the allocator lever")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument("--allocator-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("batch_size", "seq_len", "rounds", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.allocator_worker:
        _allocator_worker(args.config, args.batch_size, args.seq_len, args.steps)
        return

    info = machine_info()
    print(f"{info['cpu']}, {info['cpu_cores']} cores ({info['cpu_capability']}; bf16 flags: "
          f"{', '.join(info['bf16_flags']) or 'none'}), torch {info['torch']} with {info['torch_threads']} threads, "
          f"transformers {info['transformers']}, Python {info['python']}")
    print(f"CPU pressure before: {cpu_pressure()}; load average {os.getloadavg()[0]:.2f}")
    results = run_benchmark(args.config, args.batch_size, args.seq_len, args.rounds, args.steps, args.warmup,
                            compile=not args.no_compile, compare=not args.no_compare,
                            allocator_rounds=args.allocator_rounds, device=args.device)
    print(f"CPU pressure after: {cpu_pressure()}; load average {os.getloadavg()[0]:.2f}; "
          f"benchmark took {results['wall_s']:.0f} s")
    print("\n" + format_table(results))
    stem = f"training_speed_{args.config}"
    save_json(results, args.out_dir / f"{stem}.json")
    plot_results(results, args.out_dir / f"{stem}.png")
    print(f"\nwrote {args.out_dir.name}/{stem}.json and {stem}.png")


if __name__ == "__main__":
    main()
