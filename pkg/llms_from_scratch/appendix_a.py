"""Appendix A: PyTorch essentials, and data-parallel training with DistributedDataParallel.

The first half is the appendix's small classifier: a multilayer perceptron, a toy dataset, and an accuracy
helper. The second half holds the pieces of the DDP script (``appendix-A/01_main-chapter-code/DDP-script.py``)
that are worth reusing and testing: reading the process's place in the job from the variables ``torchrun``
sets, a data loader whose ``DistributedSampler`` hands every process its own share, and a training loop that
works the same whether the model is wrapped in DDP or not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "DistributedContext",
    "NeuralNetwork",
    "ToyDataset",
    "compute_accuracy",
    "ddp_cleanup",
    "ddp_setup",
    "make_toy_data",
    "prepare_dataloader",
    "train_epochs",
]


class NeuralNetwork(nn.Module):
    """A multilayer perceptron with two hidden layers (30 and 20 units) and ReLU activations."""

    def __init__(self, num_inputs: int, num_outputs: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(num_inputs, 30),  # 1st hidden layer
            nn.ReLU(),
            nn.Linear(30, 20),  # 2nd hidden layer
            nn.ReLU(),
            nn.Linear(20, num_outputs),  # output layer: one logit per class
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # logits; cross_entropy applies the softmax itself


class ToyDataset(Dataset):
    """Pairs of feature rows and integer class labels, served by index."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor):
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)} labels; they must match one to one")
        self.features = X
        self.labels = y

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[index], self.labels[index]

    def __len__(self) -> int:
        return self.labels.shape[0]


def make_toy_data(num_examples: int, num_features: int = 2, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs, one per class, as float features and long labels (reproducible for a seed)."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(num_examples) % 2  # alternate the classes so any prefix is balanced
    centers = torch.tensor([-1.5, 1.5])[y].unsqueeze(1)  # (num_examples, 1)
    X = centers + torch.randn(num_examples, num_features, generator=generator)
    return X, y


@torch.no_grad()
def compute_accuracy(model: nn.Module, dataloader: DataLoader) -> float:
    """Fraction of examples whose highest logit is the true class."""
    model.eval()
    correct, total = 0, 0
    for features, labels in dataloader:
        predictions = torch.argmax(model(features), dim=1)
        correct += (predictions == labels).sum().item()
        total += len(labels)
    return correct / total


# ---------------------------------------------------------------------------------------------------------------
# Distributed data parallel
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job: global rank, local rank on its machine, number of processes."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 logs and writes checkpoints, so the other processes do not repeat or clobber it."""
        return self.rank == 0


def ddp_setup(backend: str | None = None) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT.

    The backend defaults to NCCL when CUDA GPUs are present (one per process, chosen by the local rank) and
    to gloo on the CPU.
    """
    import torch.distributed as dist

    missing = [v for v in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise RuntimeError(
            f"environment variables {', '.join(missing)} are not set: start this script with torchrun, e.g. "
            "`torchrun --standalone --nproc_per_node=2 DDP-script.py`"
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, local_rank, world_size, device)


def ddp_cleanup() -> None:
    """Leave the process group (every process calls this once at the end)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def prepare_dataloader(dataset: Dataset, batch_size: int, world_size: int = 1, rank: int = 0,
                       shuffle: bool = True, seed: int = 0) -> DataLoader:
    """A loader that gives this process every ``world_size``-th example of a (seeded) shuffled order.

    ``batch_size`` is per process; the global batch is ``batch_size * world_size``. With one process this is
    a plain shuffled loader over the same order, which is what makes the DDP run comparable with it.
    """
    from torch.utils.data.distributed import DistributedSampler

    if len(dataset) % (batch_size * world_size) != 0:
        raise ValueError(
            f"{len(dataset)} examples do not split into global batches of {batch_size} x {world_size} processes; "
            "choose sizes that divide evenly so that every process takes the same number of equal steps"
        )
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=0)


def train_epochs(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, num_epochs: int,
                 device: torch.device | str = "cpu", log=None) -> list[float]:
    """Train for ``num_epochs``; returns the mean training loss of each epoch (of this process's share).

    Works for plain and DDP-wrapped models: DDP averages the gradients over processes during ``backward``.
    ``log`` is called with one line per epoch (pass ``print`` on rank 0 only).
    """
    epoch_losses = []
    for epoch in range(num_epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)  # a new shuffle each epoch, identical on every process
        model.train()
        total, batches = 0.0, 0
        for features, labels in loader:
            features, labels = features.to(device), labels.to(device)
            loss = nn.functional.cross_entropy(model(features), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            batches += 1
        epoch_losses.append(total / batches)
        if log is not None:
            log(f"Epoch {epoch + 1:03d}/{num_epochs:03d} | Train loss {epoch_losses[-1]:.4f}")
    return epoch_losses
