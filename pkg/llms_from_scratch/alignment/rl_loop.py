"""What the RL trainers (:mod:`.grpo`, :mod:`.ppo`) share around their update step: the per-step random streams,
the history, the checkpoint they save and resume, and the loop with its progress bar and evaluations."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..training.checkpoints import CheckpointError, load_model_state_dict, read_checkpoint, save_checkpoint

EvaluateFn = Callable[[nn.Module], dict[str, float]]


def step_generator(seed: int, step: int, stream: int, device: torch.device) -> torch.Generator:
    """A random stream fixed by (seed, step, stream): the prompts (stream 0) and the samples (stream 1) of a step
    do not depend on what ran before, so a resumed run draws exactly what an uninterrupted one draws."""
    generator = torch.Generator(device=device)
    generator.manual_seed((seed * 1_000_003 + step) * 2 + stream)
    return generator


def record_eval(history: dict[str, Any], step: int, metrics: dict[str, float]) -> None:
    """Append ``metrics`` measured at ``step`` to ``history["eval"]`` (one list per metric)."""
    history["eval_step"].append(step)
    for key, value in metrics.items():
        history["eval"].setdefault(key, []).append(float(value))


class RLSession:
    """One training session of ``policy``: its AdamW optimizer, the step reached and the history, fresh or read
    back from ``checkpoint_path`` (``resume=True``), and :meth:`run` for the steps still to do.

    ``kind`` ("grpo", "ppo") is written into the checkpoint; resuming refuses a checkpoint of another kind or one
    trained with other settings (``config``, a dataclass; only ``steps`` may differ, to train for longer).
    """

    def __init__(self, policy: nn.Module, config: Any, kind: str, step_keys: Sequence[str], *,
                 checkpoint_path: str | Path | None, resume: bool, evaluate: EvaluateFn | None):
        self.policy, self.config, self.kind, self.step_keys = policy, config, kind, tuple(step_keys)
        self.evaluate = evaluate
        self.optimizer = torch.optim.AdamW(policy.parameters(), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        self.path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.step = 0
        self.history: dict[str, Any] = {"step": [], "eval_step": [], "eval": {}, "seconds": 0.0}
        self.history.update({key: [] for key in self.step_keys})
        if resume:
            if self.path is None:
                raise ValueError("resume=True needs the checkpoint_path to resume from")
            self._resume()
        elif evaluate is not None:
            record_eval(self.history, 0, evaluate(policy))

    def _resume(self) -> None:
        ckpt = read_checkpoint(self.path, map_location="cpu", require_checksum=True)
        needed = {"model", "optimizer", "step", "history", "config"}
        if not isinstance(ckpt, dict) or ckpt.get("kind") != self.kind or not needed <= ckpt.keys():
            raise CheckpointError(f"{self.path} is not a {self.kind.upper()} checkpoint; start without resume or "
                                  "use another path")
        # a setting the checkpoint does not name was added later and ran at its default then
        defaults = {f.name: f.default for f in fields(self.config) if f.default is not MISSING}
        saved = {**defaults, **ckpt["config"]}
        current = asdict(self.config)
        changed = sorted(k for k in current if k != "steps" and saved.get(k) != current[k])
        if changed:
            raise CheckpointError(f"{self.path} was trained with other settings ({', '.join(changed)}); resume with "
                                  "the same settings or start a new run")
        load_model_state_dict(self.policy, ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step, self.history = ckpt["step"], ckpt["history"]

    def save(self) -> None:
        if self.path is not None:
            save_checkpoint(self.path, self.policy, self.optimizer, step=self.step, history=self.history,
                            config=asdict(self.config), kind=self.kind)

    def run(self, one_step: Callable[[int], dict[str, float]], shown: Sequence[str], *,
            stop_at_step: int | None = None, progress: bool = True) -> dict[str, Any]:
        """Call ``one_step(step)`` (it returns the step's statistics) until ``config.steps``, or ``stop_at_step``
        for this session; evaluate and save every ``config.eval_interval`` steps and at the end. ``shown``: the
        statistics the progress bar shows. Returns the history."""
        from tqdm import tqdm

        total = self.config.steps
        end = total if stop_at_step is None else min(stop_at_step, total)
        bar = tqdm(total=total, initial=self.step, desc=self.kind.upper(), unit="step", disable=not progress)
        start = time.perf_counter()
        seconds_before = self.history["seconds"]
        while self.step < end:
            stats = one_step(self.step)
            self.step += 1
            self.history["step"].append(self.step)
            for key in self.step_keys:
                self.history[key].append(stats[key])
            bar.set_postfix({key: f"{stats[key]:.3f}" for key in shown})
            bar.update(1)
            if self.step % self.config.eval_interval == 0 or self.step == end:
                self.history["seconds"] = seconds_before + time.perf_counter() - start
                if self.evaluate is not None:
                    record_eval(self.history, self.step, self.evaluate(self.policy))
                    if progress:
                        values = [f"{key} {stats[key]:.3f}" for key in shown]
                        values += [f"{key} {v[-1]:.3f}" for key, v in self.history["eval"].items()]
                        bar.write(f"step {self.step}/{total}: {', '.join(values)}")
                self.save()
        bar.close()
        return self.history
