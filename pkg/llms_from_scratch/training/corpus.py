"""The corpus a run trains on: its text files, read strictly as UTF-8, and a record that tells when they change.

A record lists every file by its path below the corpus root (a file given alone is its own root), with its size,
its modification time and the SHA-256 of its bytes. Checking a record against the disk needs only ``stat``: a
file is read and hashed again only when its size is unchanged but its time is not (a copy or a ``touch`` that
left the text as it was), so an unchanged corpus is recognised without reading it.

Standard library only: the command line checks ``--data`` with it before it imports torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

__all__ = ["corpus_changes", "corpus_files", "file_entry", "read_corpus_text", "summarize"]

# how many changed files a message names before it says "and N more"
_NAMED_CHANGES = 3


def corpus_files(source: str | Path) -> list[Path]:
    """The text files of a corpus: ``source`` itself, or every ``*.txt`` below the folder, in sorted order."""
    source = Path(source)
    if source.is_file():
        return [source]
    if source.is_dir():
        files = sorted(p for p in source.rglob("*.txt") if p.is_file())
        if not files:
            raise FileNotFoundError(f"no .txt files below {source}; put the training text in .txt files")
        return files
    raise FileNotFoundError(f"{source} is neither a text file nor a folder; pass an existing file or folder as --data")


def _relative_name(path: Path, source: Path) -> str:
    return path.name if source.is_file() else path.relative_to(source).as_posix()


def file_entry(path: Path, source: str | Path) -> dict[str, Any]:
    """What the record keeps of one file before its bytes are read: its name below ``source``, size and time."""
    stat = path.stat()
    return {"path": _relative_name(path, Path(source)), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_corpus_text(path: Path) -> tuple[str, str]:
    """The text of a corpus file and the SHA-256 of its bytes; a file that is not UTF-8 is named with the offset."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} cannot be decoded "
            f"({exc.reason}); convert the file to UTF-8 (for example with iconv) or move it out of the corpus"
        ) from None
    return text, hashlib.sha256(data).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def corpus_changes(recorded: list[dict[str, Any]], source: str | Path) -> list[str]:
    """How the files below ``source`` differ from ``recorded`` (entries with path, size, mtime_ns, sha256).

    Returns one short phrase per difference ("a.txt was added", "b.txt changed (size 10 -> 12 bytes)"); an empty
    list means the corpus is the recorded one.
    """
    source = Path(source)
    now = {_relative_name(p, source): p for p in corpus_files(source)}
    before = {entry["path"]: entry for entry in recorded}
    changes = [f"{name} was removed" for name in before if name not in now]
    for name, path in now.items():
        entry = before.get(name)
        if entry is None:
            changes.append(f"{name} was added")
            continue
        stat = path.stat()
        if stat.st_size != entry["size"]:
            changes.append(f"{name} changed (size {entry['size']:,} -> {stat.st_size:,} bytes)")
        elif stat.st_mtime_ns != entry["mtime_ns"] and _sha256(path) != entry["sha256"]:
            changes.append(f"{name} changed (same size, different content)")
    return changes


def summarize(changes: list[str]) -> str:
    """The first few changes, joined into one phrase."""
    named = ", ".join(changes[:_NAMED_CHANGES])
    more = len(changes) - _NAMED_CHANGES
    return named if more <= 0 else f"{named} and {more} more"
