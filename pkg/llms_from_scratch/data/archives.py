"""Copying one named file out of an archive: a zip (a wheel, a zipped data set) or a tar, plain or compressed (a
Python source distribution, ``name-version.tar.gz``).

Only the bytes of the one member are copied, into a file the caller opened, so nothing in the archive chooses a
path on disk: a member named ``../../etc/passwd`` or a link can never be written anywhere. A member must be a
regular file; the copy stops as soon as it passes ``limit`` bytes, whatever the archive's headers claim, because a
small archive can unpack to an enormous file.
"""

from __future__ import annotations

import gzip
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from .asset import check_member_name
from .stream import DownloadError

_CHUNK = 1 << 20


def extract_member(archive: Path | BinaryIO, member: str, out: BinaryIO, limit: int,
                   archive_name: str = "the archive") -> None:
    """Copy the regular file ``member`` of the zip or tar ``archive`` (a path or an open file) into ``out``.

    Raises :class:`DownloadError` when the archive is not a zip or tar, lacks the member, holds it as something
    other than a regular file, or holds more than ``limit`` bytes of it.
    """
    check_member_name(member)
    if isinstance(archive, Path):
        with open(archive, "rb") as f:
            return extract_member(f, member, out, limit, archive_name)
    start = archive.tell()
    is_zip = zipfile.is_zipfile(archive)
    archive.seek(start)
    if is_zip:
        _from_zip(archive, member, out, limit, archive_name)
    else:
        _from_tar(archive, member, out, limit, archive_name)


def _copy(src: BinaryIO, out: BinaryIO, member: str, limit: int, archive_name: str) -> int:
    """Copy ``src`` into ``out`` and return the number of bytes, failing once more than ``limit`` came out."""
    copied = 0
    while block := src.read(_CHUNK):  # the header's size may lie: count what really comes out
        copied += len(block)
        if copied > limit:
            raise DownloadError(f"{member!r} in {archive_name} unpacks to more than the {limit:,} bytes expected")
        out.write(block)
    return copied


def _too_big(member: str, size: int, limit: int, archive_name: str) -> DownloadError:
    return DownloadError(f"{archive_name} holds {member!r} as {size:,} bytes, more than the {limit:,} expected")


def _from_zip(archive: BinaryIO, member: str, out: BinaryIO, limit: int, archive_name: str) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            info = zf.getinfo(member)
            if info.is_dir():
                raise DownloadError(f"{member!r} in {archive_name} is a folder, not a file")
            if info.file_size > limit:
                raise _too_big(member, info.file_size, limit, archive_name)
            with zf.open(info) as src:
                _copy(src, out, member, limit, archive_name)
    except zipfile.BadZipFile:
        raise DownloadError(f"{archive_name} is not a valid zip archive") from None
    except KeyError:
        raise DownloadError(f"{archive_name} has no member {member!r}") from None


def _from_tar(archive: BinaryIO, member: str, out: BinaryIO, limit: int, archive_name: str) -> None:
    try:
        with tarfile.open(fileobj=archive, mode="r:*") as tf:
            for info in tf:  # stop at the first match rather than decompressing the whole archive
                if info.name.removeprefix("./") != member:
                    continue
                if not info.isreg():
                    raise DownloadError(f"{member!r} in {archive_name} is a link or special file, not a regular file")
                if info.size > limit:
                    raise _too_big(member, info.size, limit, archive_name)
                src = tf.extractfile(info)
                assert src is not None  # a regular file always has a body
                if _copy(src, out, member, limit, archive_name) != info.size:
                    raise DownloadError(f"{member!r} in {archive_name} is cut short: the archive is incomplete")
                return
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        # not OSError in general: a failed write into ``out`` (disk full) is the cache's fault and stays an OSError
        raise DownloadError(f"{archive_name} is neither a valid zip nor a valid tar archive ({exc})") from None
    raise DownloadError(f"{archive_name} has no member {member!r}")
