"""Atomic file writes: the file appears whole, or the old one stays.

>>> with atomic_path("out/model.safetensors") as tmp:
...     save_file(tensors, tmp)                 # any writer that takes a path

The body writes to a temporary file beside the target (same folder, so the same file system); when it finishes
without an exception the bytes are flushed to disk and the temporary file is renamed over the target in one
step (``os.replace``: atomic on POSIX and Windows), so readers see the old file or the new one, never a part.
If the body raises, the temporary file is removed and the target is left as it was.

The new file gets the permissions any new file gets (``0o666`` less the umask, ``-rw-r--r--`` under the usual
umask 022), so a cache shared by several users stays readable by all of them.

A process killed outright (``kill -9``, a power cut) cannot remove its temporary file. Each one is therefore
named after the process that writes it, ``.NAME.HOST-PID.RANDOM.tmp``, and :func:`remove_stale_temporaries`
deletes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"
STALE_AFTER = 24 * 3600.0  # seconds untouched after which any temporary counts as abandoned, whoever wrote it

# .NAME.HOST-PID.RANDOM.tmp (this module; tempfile's folders add their own random letters) and .NAME.RANDOM.tmp
# (earlier versions: tempfile.mkstemp's 8 characters)
_OWNED = re.compile(r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[a-z0-9_]+\.tmp")
_UNOWNED = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")


def _host() -> str:
    """This machine's name, reduced to characters that are safe in a file name and cannot be mistaken for '-'."""
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"


def temporary_prefix(target: str | os.PathLike) -> str:
    """The start of the name of a temporary file for ``target`` written by this process (``.NAME.HOST-PID.``).

    Code that needs a temporary folder beside ``target`` passes it as ``prefix`` together with
    ``suffix=TEMP_SUFFIX`` to :class:`tempfile.TemporaryDirectory`, so :func:`remove_stale_temporaries` finds it too.
    """
    return f".{Path(target).name}.{_host()}-{os.getpid()}."


def _create_temporary(target: Path) -> Path:
    prefix = temporary_prefix(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = target.parent / f"{prefix}{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            # mode 0o666: the kernel applies the umask, as for any file a program creates (mkstemp would give 0o600)
            fd = os.open(path, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise FileExistsError(f"could not find a free temporary name beside {target}")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` (parent folders are created)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the leading dot hides the partial file from folder listings and globs such as *.safetensors
    tmp = _create_temporary(target)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _process_is_gone(pid: int) -> bool:
    if pid <= 0 or sys.platform == "win32":  # on Windows os.kill would end the process: leave it to the age rule
        return False
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # it exists but belongs to another user, or the question cannot be asked
        return False
    return False


def is_stale(path: Path, *, now: float | None = None, max_age: float = STALE_AFTER) -> bool:
    """Whether ``path`` is a temporary file or folder of :func:`atomic_path` that nobody will finish.

    Two rules, each safe on its own: the name says it was written on this machine by a process that no longer
    runs; or nothing has touched it for ``max_age`` seconds (a live download writes every few seconds). A
    process on another machine sharing the folder is never judged by its PID, which means nothing here.
    """
    owned = _OWNED.fullmatch(path.name)
    if owned is None and _UNOWNED.fullmatch(path.name) is None:
        return False
    if owned is not None and owned["host"] == _host() and _process_is_gone(int(owned["pid"])):
        return True
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    return age > max_age


def remove_stale_temporaries(folder: str | os.PathLike, *, target: str | None = None,
                             max_age: float = STALE_AFTER) -> list[Path]:
    """Delete the temporaries in ``folder`` that :func:`is_stale` judges abandoned; return what was removed.

    ``target`` (a file name) limits the clean-up to that file's temporaries, for folders this package does not
    own. Never raises: a folder that is missing, unreadable or read-only simply keeps what it holds.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    start = "." if target is None else f".{target}."
    for path in entries:
        if not (path.name.startswith(start) and path.name.endswith(TEMP_SUFFIX)) or not is_stale(path, max_age=max_age):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed
