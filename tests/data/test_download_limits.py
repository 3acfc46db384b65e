"""Downloads have limits (issue 15, defect 9): a source may not send more than the asset holds, nor take longer
than its deadline, however slowly it trickles; an archive may not unpack to more than its member's size."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from drip_http import drip, endless, header_drip, serve_raw
from local_http import Reply, serve

from llms_from_scratch.data import Asset, AssetUnavailableError, DownloadError, download_url, fetch_asset

DEADLINE_ENV = "LLMS_DOWNLOAD_DEADLINE"  # seconds one source may take, replacing the size-based default
BODY = b"0123456789" * 100  # 1,000 bytes


def make_asset(url: str, body: bytes = BODY, member: str | None = None) -> Asset:
    return Asset("limits-asset", "limits/asset.txt", (url,), hashlib.sha256(body).hexdigest(), len(body),
                 "test", "a file made up by the test", archive_member=member)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("LLMS_CACHE_DIR", str(root))
    monkeypatch.delenv("LLMS_DATA_MIRROR", raising=False)
    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    return root


def files_in(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def the_reason(error: pytest.ExceptionInfo, url: str) -> str:
    """The 'Tried:' line of an AssetUnavailableError for ``url``."""
    return next(line for line in str(error.value).splitlines() if url in line)


def test_an_announced_body_larger_than_the_asset_is_refused_before_it_is_written(cache):
    requests = []
    with serve({"/big": Reply(body=b"y" * (10 * 2**20))}, requests) as url:
        with pytest.raises(AssetUnavailableError) as info:
            fetch_asset(make_asset(f"{url}/big"), quiet=True)
    assert "the server announces 10,485,760 bytes, more than the 1,000 expected" in the_reason(info, url)
    assert files_in(cache) == []


def test_a_body_without_end_stops_at_the_cap(cache, tmp_path):
    with serve_raw(endless()) as url:
        with pytest.raises(AssetUnavailableError) as info:
            fetch_asset(make_asset(f"{url}/endless"), quiet=True)
        assert "the server sent more than the 1,000 bytes expected; stopped there" in the_reason(info, url)
        # a URL no asset describes gets the cap it is given
        with pytest.raises(DownloadError, match="more than the 100,000 bytes expected"):
            download_url(f"{url}/endless", tmp_path / "out" / "file.bin", quiet=True, max_bytes=100_000)
    assert files_in(cache) == [] and files_in(tmp_path / "out") == []


def test_a_trickle_runs_into_the_deadline(cache, monkeypatch):
    monkeypatch.setenv(DEADLINE_ENV, "1")
    with serve_raw(drip(BODY[:100], interval=0.5)) as url:
        asset = make_asset(f"{url}/drip", body=BODY[:100])
        with pytest.raises(AssetUnavailableError) as info:
            fetch_asset(asset, quiet=True)
    reason = the_reason(info, url)
    assert "gave up after 1 s, the time one source may take" in reason and f"set {DEADLINE_ENV}" in reason
    arrived = int(reason.split("(")[1].split(" bytes")[0])
    assert arrived < 100  # stopped part-way, a byte every half second
    assert files_in(cache) == []


def test_the_deadline_covers_the_headers(cache):
    with serve_raw(header_drip(interval=0.2)) as url:
        with pytest.raises(AssetUnavailableError) as info:
            fetch_asset(make_asset(f"{url}/headers"), quiet=True, deadline=1.0)
    assert "gave up after 1 s" in the_reason(info, url)


def test_default_deadline_grows_with_the_size(monkeypatch):
    from llms_from_scratch.data.limits import BASE_DEADLINE, MIN_RATE, deadline_for, size_cap

    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    assert deadline_for(None) == BASE_DEADLINE
    assert deadline_for(100 * MIN_RATE) == BASE_DEADLINE + 100
    monkeypatch.setenv(DEADLINE_ENV, "2.5")
    assert deadline_for(10**12) == 2.5
    monkeypatch.setenv(DEADLINE_ENV, "soon")
    with pytest.raises(ValueError, match=f"{DEADLINE_ENV}='soon' is not a positive number of seconds"):
        deadline_for(None)
    unknown = Asset("u", "u.bin", ("http://127.0.0.1/u",), "0" * 64, None, "test", "no published size")
    assert size_cap(unknown) >= 8 * 2**30  # the largest GPT-2 checkpoint (6.4 GB) has no published size


def test_an_archive_may_not_unpack_to_more_than_the_member(cache):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.txt", b"\0" * (10 * 2**20))  # ten MiB of zeros pack into a few kB
    assert len(buffer.getvalue()) < 2 * len(BODY) + 2**20  # so the download itself is within the cap
    with serve({"/bomb.zip": Reply(body=buffer.getvalue())}) as url:
        with pytest.raises(AssetUnavailableError) as info:
            fetch_asset(make_asset(f"{url}/bomb.zip", member="data.txt"), quiet=True)
    assert "holds 'data.txt' as 10,485,760 bytes, more than the 1,000 expected" in the_reason(info, url)
    assert files_in(cache) == []
