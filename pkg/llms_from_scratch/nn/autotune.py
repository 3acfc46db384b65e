"""Choosing the decode kernels on the machine that runs them, and remembering the choice.

Which matrix-product kernel streams a weight fastest for one or a few input rows depends on the CPU: a fixed rule
that made decoding faster on one machine made it slower on another. So :func:`prepare_for_decoding` measures
instead of assuming, on the model's own weights and batch size:

1. for each kind of linear layer in the model (same shape, same bias), every candidate kernel of
   :func:`~.decode_layout.kernel_candidates` multiplies ``batch_size`` rows by the model's weights of that kind,
   in alternating rounds; a candidate replaces ``F.linear`` only if it is faster by more than :data:`MARGIN`;
2. for each kind of projection group that reads one input (q/k/v, SwiGLU's gate and up), the stacked product
   under each kernel races the separate products, on the same terms;
3. a whole decode step of the model built from those choices races a step of the plain model, and the choices
   are kept only if the step is faster by more than :data:`MARGIN`; so the set-up is never slower than the
   plain model beyond the noise of the measurement.

Before it races, a candidate must give ``F.linear``'s values on the real shapes; a kernel that fails or differs
(a private op that changed in a new PyTorch, say) just drops out. Choices are stored in a small JSON file in the
user's cache folder (:func:`default_cache_file`), under a key naming the machine (CPU model, CPU flags, PyTorch
version, thread count), the rows and the dtype: the measurement runs once per machine and model, and deleting the
file makes it run again. Where other processes keep the CPUs busy (Linux reports it as CPU pressure), timings say
little, so a busy machine measures nothing (or discards what it measured) and decodes plain, storing nothing.

>>> fast = prepare_for_decoding(model, batch_size=1)  # once, after loading; `model` stays as it was
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..files import atomic_path
from .decode_layout import (
    KERNELS,
    PLAIN,
    SEPARATE,
    DecodePlan,
    available_kernels,
    build_decoding_model,
    decode_sites,
    kernel_candidates,
    linear_key,
    plain_choice,
)

log = logging.getLogger(__name__)

MARGIN = 0.03  # a candidate must beat the plain path by more than this fraction: smaller gaps are noise
KIND_BUDGET_S = 0.05  # racing the candidates for one kind of layer (at least MIN_ROUNDS rounds)
STEP_BUDGET_S = 0.5  # racing the whole decode step (at least MIN_ROUNDS, at most MAX_STEP_ROUNDS rounds)
MIN_ROUNDS = 3
MAX_STEP_ROUNDS = 24
CYCLE_BYTES = 64 * 2**20  # weights of one kind multiplied per round: more than a core's caches hold
BUSY_SHARE = 0.2  # CPU pressure above which timings say little (see cpu_wait)
CACHE_FILE_NAME = "decode-kernels.json"
FORMAT = 1  # of the cache file; a file in another format is ignored (and replaced)
_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}  # relative to the output's scale; 2e-2 for 16-bit floats


def prepare_for_decoding(model: nn.Module, batch_size: int = 1, *, autotune: bool = True,
                         cache_file: str | Path | None = None) -> nn.Module:
    """``model`` set up to decode ``batch_size`` sequences at a time as fast as this machine allows.

    Returns a new model built by :func:`~.decode_layout.build_decoding_model` from the kernels that
    :func:`tune_decoding` measured fastest here, sharing ``model``'s weights; or ``model`` itself where the plain
    path was fastest, with ``autotune=False``, and for models not on a CPU. Outputs equal the plain model's up to
    float rounding. ``model`` is never changed. Stacked projections are copies that belong to the returned model:
    they take their memory a second time while ``model`` is kept too, and they do not follow later changes to
    ``model`` (training, ``model.to(...)``), so prepare again after those; moving or casting the returned model
    itself moves everything it holds.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not autotune:
        return model
    return build_decoding_model(model, tune_decoding(model, batch_size, cache_file=cache_file))


def default_cache_file() -> Path:
    """Where choices are kept: ``decode-kernels.json`` in the data layer's cache folder (``$LLMS_CACHE_DIR``, else
    the platform's user cache folder)."""
    from ..data.download import cache_dir

    return cache_dir() / CACHE_FILE_NAME


def cpu_description() -> tuple[str, str]:
    """``(CPU model name, its feature flags as one space-separated string)`` as the operating system reports them
    (the flags are empty where it reports none)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, sep, value = line.partition(":")
            if sep:
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or fields.get("Model") or fields.get("CPU part")
    if not name and sys.platform == "darwin":
        done = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        name = done.stdout.strip()
    return name or platform.processor() or platform.machine(), fields.get("flags") or fields.get("Features", "")


def machine_key() -> str:
    """What a stored choice depends on besides the model: CPU model, CPU flags, PyTorch version, threads."""
    name, flags = cpu_description()
    digest = hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:12]
    return f"{name} | flags {digest} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def cpu_wait() -> tuple[float, float] | None:
    """Linux's CPU pressure: ``(share of the last 10 s in which some task waited for a CPU, seconds waited since
    boot)``; None where the system does not report it."""
    try:
        fields = dict(f.split("=") for f in Path("/proc/pressure/cpu").read_text().split()[1:5])  # the "some" line
        return float(fields["avg10"]) / 100, int(fields["total"]) / 1e6
    except (OSError, ValueError, KeyError):
        return None


def tune_decoding(model: nn.Module, batch_size: int = 1, *, cache_file: str | Path | None = None) -> DecodePlan:
    """The fastest :class:`~.decode_layout.DecodePlan` for decoding ``batch_size`` rows with ``model`` here: read
    from ``cache_file`` (default :func:`default_cache_file`) where it was measured before, else measured (see the
    module's docstring) and stored there. Models not on a CPU get the plain plan without measuring, and so does a
    machine that other processes keep busy (nothing is stored then)."""
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if param is None or param.device.type != "cpu":
        return DecodePlan(batch_size, param.dtype if param is not None else torch.float32)
    dtype = param.dtype
    path = Path(cache_file) if cache_file is not None else default_cache_file()
    machine = machine_key()
    stored = _read_cache(path)["machines"].get(machine, {})
    context = f"rows={batch_size} {str(dtype).removeprefix('torch.')}"
    linears, groups = decode_sites(model)
    model_key = f"model {_digest(linears, groups)} {context}"
    known = stored.get("models", {}).get(model_key)
    if isinstance(known, dict) and _valid_choices(known.get("choices")):
        return DecodePlan(batch_size, dtype, dict(known["choices"]))

    plain = DecodePlan(batch_size, dtype, {key: plain_choice(key) for key in (*linears, *groups)})
    before = cpu_wait()
    if before is not None and before[0] > BUSY_SHARE:
        log.info("decoding plain: other processes keep the CPUs busy (%.0f%% of the time), so timings would "
                 "say little; the kernels are measured on a later run", 100 * before[0])
        return plain
    start = time.perf_counter()
    kinds = {k: v for k, v in stored.get("kinds", {}).items() if _valid_choices({k: v})}
    choices: dict[str, str] = {}
    with torch.no_grad():
        for key, layers in linears.items():
            choices[key] = kinds.get(f"{key} {context}") or _race_linears(layers, batch_size, dtype)
        for key, members in groups.items():
            choices[key] = kinds.get(f"{key} {context}") or _race_group(members, choices, batch_size, dtype)
        plan = DecodePlan(batch_size, dtype, choices)
        step_ms = {}
        if not plan.is_plain():
            times = _race(_decode_steps(model, build_decoding_model(model, plan), batch_size), STEP_BUDGET_S,
                          max_rounds=MAX_STEP_ROUNDS)
            step_ms = {name: round(t * 1e3, 3) for name, t in times.items()}
            if _pick(times, "plain") == "plain":
                plan = plain
    elapsed = time.perf_counter() - start
    after = cpu_wait()
    if before is not None and after is not None and after[1] - before[1] > BUSY_SHARE * elapsed:
        log.info("decoding plain: other processes took the CPUs while the kernels were measured; they are "
                 "measured again on a later run")
        return plain
    log.info("decode kernels for %s, %s chosen in %.2f s: %s (step ms: %s)", machine, context, elapsed,
             plan.choices, step_ms or "not raced: every kind is fastest plain")
    new_kinds = {f"{key} {context}": value for key, value in choices.items()}
    _store(path, machine, new_kinds, model_key, {"choices": plan.choices, "step_ms": step_ms})
    return plan


# ---------------------------------------------------------------------------------------------------------------
# what is raced


def _digest(linears: dict[str, list], groups: dict[str, list]) -> str:
    """A short name for the model's make-up: its kinds of layers and how many of each."""
    parts = sorted(f"{key} x{len(items)}" for key, items in (*linears.items(), *groups.items()))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _valid_choices(choices: object) -> bool:
    """True for a stored ``{key: kernel}`` dict whose kernels this PyTorch can run."""
    usable = {SEPARATE, *available_kernels()}
    return isinstance(choices, dict) and all(isinstance(v, str) and v in usable for v in choices.values())


def _cycle(items: list, nbytes: Callable[[object], int]) -> list:
    """The first items whose weights add up to about :data:`CYCLE_BYTES` (at least one)."""
    chosen, total = [], 0
    for item in items:
        if chosen and total + nbytes(item) > CYCLE_BYTES:
            break
        chosen.append(item)
        total += nbytes(item)
    return chosen


def _inputs(rows: int, in_features: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(rows, in_features, generator=torch.Generator().manual_seed(0)).to(dtype)


def _agrees(kernel: Callable, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether ``kernel`` runs on these operands and gives ``F.linear``'s values (up to float rounding)."""
    expected = F.linear(x, weight, bias)
    try:
        got = kernel(x, weight, bias)
    except (RuntimeError, TypeError):  # e.g. a private op whose signature changed
        return False
    scale = float(expected.abs().max().clamp(min=1.0))
    tolerance = _TOLERANCE.get(weight.dtype, 2e-2) * scale
    return got.shape == expected.shape and bool((got - expected).abs().max() <= tolerance)


def _race_linears(layers: list[nn.Linear], rows: int, dtype: torch.dtype) -> str:
    """The kernel to use for ``rows`` rows times the weights of ``layers`` (all of one kind)."""
    operands = _cycle([(layer.weight, layer.bias) for layer in layers], lambda wb: wb[0].nbytes)
    x = _inputs(rows, layers[0].in_features, dtype)
    runs = {}
    for name in kernel_candidates(rows, layers[0].weight):
        kernel = KERNELS[name]
        if name == PLAIN or _agrees(kernel, x, *operands[0]):
            runs[name] = lambda kernel=kernel: [kernel(x, w, b) for w, b in operands]
    return _pick(_race(runs, KIND_BUDGET_S), PLAIN) if len(runs) > 1 else PLAIN


def _race_group(groups: list[list[nn.Linear]], choices: dict[str, str], rows: int, dtype: torch.dtype) -> str:
    """:data:`SEPARATE`, or the kernel for the stacked product of each group in ``groups`` (all of one kind); the
    separate layers run with the kernels already in ``choices``."""
    groups = _cycle(groups, lambda group: sum(layer.weight.nbytes for layer in group))
    separate = [[(KERNELS[choices[linear_key(layer)]], layer.weight, layer.bias) for layer in g] for g in groups]
    stacked = [(torch.cat([layer.weight for layer in g]),
                torch.cat([layer.bias for layer in g]) if g[0].bias is not None else None) for g in groups]
    x = _inputs(rows, groups[0][0].in_features, dtype)
    runs = {SEPARATE: lambda: [kernel(x, w, b) for g in separate for kernel, w, b in g]}
    for name in kernel_candidates(rows, stacked[0][0]):
        kernel = KERNELS[name]
        if name == PLAIN or _agrees(kernel, x, *stacked[0]):
            runs[name] = lambda kernel=kernel: [kernel(x, w, b) for w, b in stacked]
    return _pick(_race(runs, KIND_BUDGET_S), SEPARATE)


def _decode_steps(plain: nn.Module, tuned: nn.Module, rows: int) -> dict[str, Callable[[], object]]:
    """One-token decode steps of both models, each on a KV cache of its own (if the model makes one)."""
    device = next(plain.parameters()).device
    ids = torch.zeros(rows, 1, dtype=torch.long, device=device)

    def step(model: nn.Module) -> Callable[[], object]:
        if not hasattr(model, "new_cache"):
            return lambda: model(ids)
        cache = model.new_cache(rows, MAX_STEP_ROUNDS + 1)  # the warm-up step and one step per round
        return lambda: model(ids, cache=cache, last_token_only=True)

    return {"plain": step(plain), "tuned": step(tuned)}


def _race(runs: dict[str, Callable[[], object]], budget_s: float, max_rounds: int = 10_000) -> dict[str, float]:
    """The fastest time of each run over alternating rounds (after one warm-up call each), for ``budget_s`` seconds
    and at least :data:`MIN_ROUNDS` rounds. The minimum, not the mean: load from other processes only adds time."""
    best = dict.fromkeys(runs, math.inf)
    for fn in runs.values():
        fn()
    order = list(runs.items())
    start, rounds = time.perf_counter(), 0
    while rounds < max_rounds and (rounds < MIN_ROUNDS or time.perf_counter() - start < budget_s):
        for name, fn in order if rounds % 2 == 0 else reversed(order):
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
        rounds += 1
    return best


def _pick(times: dict[str, float], baseline: str) -> str:
    """The fastest entry if it beats ``baseline`` by more than :data:`MARGIN`, else ``baseline``."""
    fastest = min(times, key=times.__getitem__)
    return fastest if times[fastest] < (1 - MARGIN) * times[baseline] else baseline


# ---------------------------------------------------------------------------------------------------------------
# the cache file


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, unreadable or not JSON: measure again
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("machines"), dict):
        return {"format": FORMAT, "machines": {}}
    return data


def _store(path: Path, machine: str, kinds: dict[str, str], model_key: str, model_entry: dict) -> None:
    """Add the entries to the file, read afresh so that entries another process wrote meanwhile stay, and replace
    it in one step. A cache that cannot be written only costs the measurement next time."""
    data = _read_cache(path)
    entry = data["machines"].setdefault(machine, {})
    if not isinstance(entry.get("kinds"), dict) or not isinstance(entry.get("models"), dict):
        entry.update(kinds={}, models={})
    entry["kinds"].update(kinds)
    entry["models"][model_key] = model_entry
    try:
        with atomic_path(path) as tmp:  # readers see the old file or the new one, never a part
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    except OSError as exc:
        warnings.warn(f"could not store the decode kernel choice in {path} ({exc}); it will be measured again",
                      stacklevel=3)
