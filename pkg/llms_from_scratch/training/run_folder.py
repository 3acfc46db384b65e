"""One training run per output folder, and no leftovers from runs that were killed.

A run holds an exclusive lock on ``OUT_DIR/.run.lock`` for as long as it lives. The operating system drops the
lock when the process ends, however it ends (``kill -9`` included). So a run that gets the lock knows that no
live process is writing to the folder, and every temporary file of an atomic write it finds there (such as
``.checkpoint.pth.*.tmp`` from a save that was cut short) belongs to a dead process: it is removed. A second run
started on a folder that is in use stops with an error instead of overwriting the first run's checkpoints.

Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["FolderInUseError", "exclusive_run_folder"]

LOCK_NAME = ".run.lock"


class FolderInUseError(RuntimeError):
    """Another live process holds the folder's lock."""


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # the lock covers the file's first byte
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def stale_temporary_files(folder: Path, names: Iterable[str]) -> list[Path]:
    """The temporary files that atomic writes of ``names`` leave in ``folder`` (``.NAME.<random>.tmp``)."""
    return sorted(p for name in names for p in folder.glob(f".{name}.*.tmp") if p.is_file())


@contextlib.contextmanager
def exclusive_run_folder(folder: str | Path, names: Iterable[str]) -> Iterator[list[Path]]:
    """Lock ``folder`` for this process and remove the temporary files dead runs left for ``names``.

    Yields the paths it removed. Raises :class:`FolderInUseError` when another live process holds the lock.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd):
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() if hasattr(os, "pread") else ""
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise FolderInUseError(f"{folder} is in use by {who}, which is training into it; wait for it to finish "
                                   "or pass another --out-dir")
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))  # for the message a second run shows
        removed = stale_temporary_files(folder, names)
        for path in removed:
            path.unlink(missing_ok=True)
        yield removed
    finally:
        os.close(fd)  # closing the descriptor releases the lock
