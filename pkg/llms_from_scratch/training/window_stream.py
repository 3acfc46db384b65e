"""The windows every rank trains on: an endless stream of shuffled epochs, cut into per-rank micro-batches.

A split of ``n`` tokens holds ``(n - 1) // context_length`` non-overlapping windows. The stream is epoch 0's
random order of all of them, then epoch 1's, and so on, each order fixed by ``seed + epoch``. One position in the
stream is the whole state of the data: a micro-batch step hands the next ``batch_size * world_size`` windows out,
``batch_size`` to each rank in rank order, and moves the position past them. So within an epoch no window is
repeated or skipped, however many ranks read; a batch that runs past the end of an epoch takes the rest from the
next one; and a checkpoint saved with one number of ranks continues on another from the next unread window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["DistributedWindows", "WindowStream"]


class WindowStream:
    """Window indices by stream position: position ``p`` is window ``order(p // n)[p % n]`` of ``n`` windows."""

    def __init__(self, n_windows: int, seed: int):
        if n_windows < 1:
            raise ValueError(f"a window stream needs at least one window, got {n_windows}")
        self.n_windows = n_windows
        self.seed = seed
        self._cached: tuple[int, torch.Tensor] | None = None

    def order(self, epoch: int) -> torch.Tensor:
        """The random order of all windows in ``epoch`` (a permutation of ``range(n_windows)``)."""
        if self._cached is None or self._cached[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._cached = (epoch, torch.randperm(self.n_windows, generator=generator))
        return self._cached[1]

    def take(self, start: int, count: int) -> list[int]:
        """The window indices at stream positions ``start`` to ``start + count - 1``."""
        indices: list[int] = []
        position = start
        while len(indices) < count:
            epoch, offset = divmod(position, self.n_windows)
            chunk = self.order(epoch)[offset : offset + count - len(indices)].tolist()
            indices.extend(chunk)
            position += len(chunk)
        return indices


class DistributedWindows:
    """This rank's ``(input, target)`` micro-batches from a token file, read through a memory map.

    Every rank builds one with the same arguments but its own ``rank``; together they read the stream of
    :class:`WindowStream` without overlap. ``split`` and ``val_fraction`` cut the tokens as ``TokenWindows`` does.
    """

    def __init__(self, path: str | Path, context_length: int, batch_size: int, rank: int, world_size: int,
                 split: str = "train", val_fraction: float = 0.1, seed: int = 0):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of the {world_size} ranks")
        tokens = np.memmap(path, dtype=np.uint16, mode="r")
        cut = int(len(tokens) * (1 - val_fraction))
        self.tokens = tokens[:cut] if split == "train" else tokens[cut:]
        self.context_length = context_length
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        n_windows = (len(self.tokens) - 1) // context_length
        if n_windows < 1:
            raise ValueError(
                f"the {split} split of {path} holds {len(self.tokens):,} tokens, fewer than context_length + 1 = "
                f"{context_length + 1}; use more text, a shorter --context-length or a different --val-fraction"
            )
        self.stream = WindowStream(n_windows, seed)
        self.position = 0  # windows handed out so far, to all ranks together

    def __len__(self) -> int:
        """How many windows one epoch holds (all ranks together)."""
        return self.stream.n_windows

    @property
    def epoch(self) -> float:
        """Epochs read so far, fractions included."""
        return self.position / self.stream.n_windows

    def rank_indices(self) -> list[int]:
        """The windows this rank reads in the next micro-batch (the position does not move)."""
        return self.stream.take(self.position + self.rank * self.batch_size, self.batch_size)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's next micro-batch, inputs and targets both ``(batch, context)``; moves every rank's position."""
        ctx = self.context_length
        rows = np.stack([self.tokens[i * ctx : i * ctx + ctx + 1] for i in self.rank_indices()]).astype(np.int64)
        self.position += self.batch_size * self.world_size
        batch = torch.from_numpy(rows)  # (batch, context_length + 1)
        return batch[:, :-1], batch[:, 1:]

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])
