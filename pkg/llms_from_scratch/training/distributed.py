"""Data-parallel training on several processes: the process group, the wrapped model and its full state.

``torchrun`` starts one process per GPU (or per CPU slot) and tells each its ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``. :func:`process_group` joins them with NCCL on GPUs and gloo on CPUs; started without torchrun
it forms a group of one, so the same code runs, and gives the one-process reference, in a plain process.

Two strategies:

* ``ddp``: every rank holds the whole model and optimizer; ``DistributedDataParallel`` averages the gradients.
* ``fsdp``: FSDP2's ``fully_shard`` on each transformer block, then on the root, splits every parameter, its
  gradient and its AdamW moments over the ranks; a block's weights are gathered just for its forward and
  backward. Each rank holds about ``1 / world_size`` of the model and optimizer state.

The model is wrapped together with its loss (:class:`LossModule`), so the fused loss, which reads the final
hidden states rather than the logits, still runs inside the wrapped ``forward`` that DDP and FSDP hook into.
Checkpoints hold the full, unsharded state under the plain model's names, gathered with
``torch.distributed.checkpoint.state_dict``; they load on any number of ranks and, for the model, anywhere a
``GPTModel`` state dict does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from .fused_loss import lm_loss

__all__ = ["LossModule", "Ranks", "full_state", "launched_by_torchrun", "load_full_state", "on_rank0",
           "process_group", "wrap_model"]

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that torchrun (or another launcher) started."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: its rank, how many there are, and the device it trains on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _device_for(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA GPU is available here; use --device auto or cpu")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                             "start at most that many processes per node (--nproc-per-node)")
        return torch.device("cuda", local_rank)
    raise ValueError(f"--device {name}: --strategy ddp and fsdp train on cpu or cuda (each process takes the GPU "
                     "numbered by its local rank); use --device auto, cuda or cpu")


@contextlib.contextmanager
def process_group(device_name: str) -> Iterator[Ranks]:
    """Join the processes torchrun started (or form a group of one), and leave the group afterwards."""
    if dist.is_initialized():
        raise RuntimeError("a torch.distributed process group is already running in this process; pretrain "
                           "starts its own, so call it outside that group")
    local_rank = int(os.environ.get("LOCAL_RANK", "0")) if launched_by_torchrun() else 0
    device = _device_for(device_name, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if launched_by_torchrun():
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    else:  # one process: an in-memory store, no network
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size(), device)
    except BaseException:
        dist.destroy_process_group()  # not collective on gloo: a rank that failed alone must not wait for the rest
        raise
    # Every rank leaves together: a rank that tore its connections down while a peer was still finishing the
    # last collective could abort that peer (gloo ends the process from a background thread).
    dist.barrier()
    dist.destroy_process_group()


def on_rank0(ranks: Ranks, work: Callable[[], T]) -> T:
    """Run ``work`` on rank 0 only and hand its result, or the exception it raised, to every rank.

    For the steps only one process may do (lock the folder, check the checkpoint, build the token file): the
    other ranks wait here, and an error stops all of them with the same message instead of leaving them
    waiting forever.
    """
    outcome: list[Any] = [None]
    if ranks.is_main:
        try:
            outcome[0] = ("ok", work())
        except Exception as exc:  # noqa: BLE001 - handed to every rank and raised there
            outcome[0] = ("error", exc)
    dist.broadcast_object_list(outcome, src=0)
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


class LossModule(nn.Module):
    """A ``GPTModel`` and its training loss as one module: ``forward(x, y)`` is the mean loss, ``forward(x)``
    the logits. DDP and FSDP wrap this, so the loss is computed inside their hooked ``forward``."""

    def __init__(self, model: nn.Module, fused_loss: bool = True):
        super().__init__()
        self.model = model
        self.fused_loss = fused_loss

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if targets is None:
            return self.model(inputs)
        if self.fused_loss:  # the same mean cross-entropy, without the full logits matrix
            return lm_loss(self.model, inputs, targets)
        logits = self.model(inputs)
        return nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def wrap_model(model: nn.Module, strategy: str, ranks: Ranks, fused_loss: bool = True) -> nn.Module:
    """``model`` with its loss (:class:`LossModule`), wrapped for ``strategy`` ("ddp" or "fsdp").

    ``model`` must already be on ``ranks.device`` and hold the same weights on every rank (the same seed).
    """
    module = LossModule(model, fused_loss)
    if strategy == "ddp":
        device_ids = [ranks.device.index] if ranks.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.trf_blocks:  # one all-gather per block: only one block's full weights at a time
            fully_shard(block)
        fully_shard(module)  # the rest: embeddings, final norm, output head
        return module
    raise ValueError(f"strategy must be 'ddp' or 'fsdp' here, got {strategy!r}")


def _state_options(**kwargs: bool):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """The full model and optimizer state dicts, gathered on the CPU of rank 0 (other ranks get empty dicts).

    ``model`` is the plain ``GPTModel`` inside the wrapper, so the names are its own (``tok_emb.weight``, ...);
    the optimizer's state is keyed by those names too, not by parameter numbers. Every rank must call this.
    """
    from torch.distributed.checkpoint.state_dict import get_state_dict

    return get_state_dict(model, optimizer, options=_state_options(cpu_offload=True))


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict[str, Any],
                    optimizer_state: dict[str, Any]) -> None:
    """Load full state dicts written by :func:`full_state` into a model and optimizer sharded any way.

    Every rank passes the full dicts; each keeps its own shard.
    """
    from torch.distributed.checkpoint.state_dict import set_state_dict

    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state,
                   options=_state_options())
