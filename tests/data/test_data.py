"""The data layer against a real HTTP server on 127.0.0.1: success, corruption, fallbacks, broken connections."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from local_http import Reply, free_port, serve

from llms_from_scratch.data import (
    Asset,
    AssetUnavailableError,
    fetch,
    fetch_asset,
    get_asset,
    gpt2_encoding,
    list_assets,
    read_text,
)

PAYLOAD = b"It had always been a pleasure to test downloads.\n" * 2000  # ~100 kB: several progress updates


def make_asset(*urls: str, body: bytes = PAYLOAD, member: str | None = None, name: str = "test-asset") -> Asset:
    return Asset(
        name=name,
        filename=f"sub/{name}.txt",
        urls=tuple(urls),
        sha256=hashlib.sha256(body).hexdigest(),
        size=len(body),
        license="test",
        description="a file made up by the test",
        archive_member=member,
    )


def cache_listing(root: Path) -> list[str]:
    """Every file in the cache, hidden temporary files included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_download_verifies_and_caches(cache):
    requests = []
    with serve({"/file.txt": Reply(body=PAYLOAD)}, requests) as url:
        asset = make_asset(f"{url}/file.txt")
        path = fetch_asset(asset, quiet=True)
        assert path == cache / "sub" / "test-asset.txt"
        assert path.read_bytes() == PAYLOAD
        assert cache_listing(cache) == ["sub/test-asset.txt"]
        # a second call is served from the cache without touching the network
        assert fetch_asset(asset, quiet=True) == path
    assert len(requests) == 1


def test_wrong_checksum_leaves_nothing_behind(cache):
    with serve({"/file.txt": Reply(body=PAYLOAD[:-1] + b"?")}) as url:
        asset = make_asset(f"{url}/file.txt")
        with pytest.raises(AssetUnavailableError) as info:
            fetch_asset(asset, quiet=True)
    message = str(info.value)
    assert f"{url}/file.txt: wrong checksum: sha256 " in message
    assert f"expected {asset.sha256}" in message
    assert cache_listing(cache) == []


def test_404_falls_back_to_backup(cache):
    requests = []
    with serve({"/backup.txt": Reply(body=PAYLOAD)}, requests) as url:
        asset = make_asset(f"{url}/missing.txt", f"{url}/backup.txt")
        path = fetch_asset(asset, quiet=True)
    assert path.read_bytes() == PAYLOAD
    assert [r[1] for r in requests] == ["/missing.txt", "/backup.txt"]


def test_connection_dropped_mid_file(cache):
    with serve({"/file.txt": Reply(body=PAYLOAD, drop_after=len(PAYLOAD) // 3)}) as url:
        asset = make_asset(f"{url}/file.txt")
        with pytest.raises(AssetUnavailableError) as info:
            fetch_asset(asset, quiet=True)
    line = next(line for line in str(info.value).splitlines() if "/file.txt" in line)
    assert "connection" in line  # "connection closed after ..." or "connection broke off (...)"
    assert cache_listing(cache) == []


def test_nothing_listening_gives_the_documented_message(cache):
    url = f"http://127.0.0.1:{free_port()}/file.txt"
    asset = make_asset(url)
    with pytest.raises(AssetUnavailableError) as info:
        fetch_asset(asset, quiet=True)
    target = cache / "sub" / "test-asset.txt"
    assert str(info.value) == "\n".join([
        f"Could not get asset 'test-asset' (sub/test-asset.txt, {len(PAYLOAD):,} bytes, sha256 {asset.sha256}).",
        "Tried:",
        "  - mirror: LLMS_DATA_MIRROR is not set",
        f"  - {url}: could not connect ([Errno 111] Connection refused)",
        "Supply the file in one of two ways:",
        "  1. set LLMS_DATA_MIRROR to a folder that holds 'sub/test-asset.txt', or",
        f"  2. place the file at {target}",
    ])
    assert cache_listing(cache) == []


def test_timeout_applies(cache):
    with serve({"/slow.txt": Reply(body=PAYLOAD, delay=2.0)}) as url:
        asset = make_asset(f"{url}/slow.txt")
        with pytest.raises(AssetUnavailableError, match=r"timed out after 0\.5 s"):
            fetch_asset(asset, quiet=True, timeout=0.5)
    assert cache_listing(cache) == []


def test_zip_member_is_extracted_and_checked(cache):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", b"about the data")
        archive.writestr("data.txt", PAYLOAD)
    with serve({"/data.zip": Reply(body=buffer.getvalue())}) as url:
        path = fetch_asset(make_asset(f"{url}/data.zip", member="data.txt"), quiet=True)
        assert path.read_bytes() == PAYLOAD
        with pytest.raises(AssetUnavailableError, match="has no member 'absent.txt'"):
            fetch_asset(make_asset(f"{url}/data.zip", member="absent.txt", name="other"), quiet=True)


def test_mirror_is_used_before_the_network(cache, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "sub").mkdir(parents=True)
    (mirror / "sub" / "test-asset.txt").write_bytes(PAYLOAD)
    monkeypatch.setenv("LLMS_DATA_MIRROR", str(mirror))
    asset = make_asset(f"http://127.0.0.1:{free_port()}/never-asked.txt")
    assert fetch_asset(asset, quiet=True) == mirror / "sub" / "test-asset.txt"
    assert cache_listing(cache) == []  # read in place, not copied


def test_corrupt_mirror_and_cache_files_are_reported_and_replaced(cache, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "sub").mkdir(parents=True)
    (mirror / "sub" / "test-asset.txt").write_bytes(b"not it")
    (cache / "sub").mkdir(parents=True)
    (cache / "sub" / "test-asset.txt").write_bytes(PAYLOAD[:10])
    monkeypatch.setenv("LLMS_DATA_MIRROR", str(mirror))
    with serve({"/file.txt": Reply(body=PAYLOAD)}) as url:
        path = fetch_asset(make_asset(f"{url}/file.txt"), quiet=True)
    assert path.read_bytes() == PAYLOAD  # the bad cached copy was replaced atomically


def test_registry_has_the_book_assets_and_suggests_names():
    names = {asset.name for asset in list_assets()}
    assert {"the-verdict", "sms-spam-collection", "instruction-data", "instruction-data-with-preference",
            "gpt2-encoder-json", "gpt2-vocab-bpe"} <= names
    with pytest.raises(KeyError, match="Did you mean 'the-verdict'"):
        get_asset("the-verdic")


def test_asset_checksum_must_be_well_formed():
    with pytest.raises(ValueError, match="64 lowercase hex digits"):
        Asset("x", "x", ("http://127.0.0.1/x",), "abc", None, "test", "bad checksum")


@pytest.mark.skipif("not __import__('os').environ.get('LLMS_DATA_MIRROR')", reason="needs the offline mirror")
def test_book_assets_through_the_mirror():
    text = read_text("the-verdict")
    assert len(text) == 20_479 and text.startswith("I HAD always thought Jack Gisburn")
    lines = fetch("sms-spam-collection").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5_574


@pytest.mark.skipif("not __import__('os').environ.get('LLMS_DATA_MIRROR')", reason="needs the offline mirror")
def test_gpt2_encoding_matches_tiktoken():
    encoding = gpt2_encoding()
    assert encoding.encode("Hello, do you like tea?") == [15496, 11, 466, 345, 588, 8887, 30]
    assert encoding.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert encoding.n_vocab == 50257


def test_readme_shows_the_offline_message_as_the_code_prints_it():
    """The troubleshooting block in the README must not drift from the message the data layer builds."""
    from llms_from_scratch.data.download import _unavailable_message

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("```text\n", 1)[1].split("```", 1)[0].rstrip("\n")
    lines = block.splitlines()
    tried = [line.removeprefix("  - ") for line in lines if line.startswith("  - ")]
    target = Path(lines[-1].removeprefix("  2. place the file at "))
    assert block == _unavailable_message(get_asset("the-verdict"), target, tried)


def test_one_table_lists_every_asset_and_importing_registers_nothing():
    """`data list` shows the table in data/assets.py, GPT-2's checkpoints included, before and after every module
    of the package is imported (a fresh interpreter, so no other test's registration counts)."""
    code = """
import importlib, io, contextlib, pkgutil
import llms_from_scratch
from llms_from_scratch.cli import main
from llms_from_scratch.data import ASSETS, get_asset, list_assets
out = io.StringIO()
with contextlib.redirect_stdout(out):
    main(["data", "list"])
listed = {line.split()[0] for line in out.getvalue().splitlines()}
print(sorted(listed) == sorted(a.name for a in ASSETS), get_asset("gpt2-124M-safetensors").filename)
for module in pkgutil.walk_packages(llms_from_scratch.__path__, "llms_from_scratch."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
print([a.name for a in list_assets()] == sorted(a.name for a in ASSETS))
"""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "gpt2/124M/model.safetensors", "True"]


def test_gpt2_checkpoints_are_in_the_table():
    from llms_from_scratch.data import ASSETS, gpt2_asset_name

    names = {a.name for a in ASSETS}
    for size in ("124M", "355M", "774M", "1558M"):
        assert gpt2_asset_name(size) in names
        asset = get_asset(gpt2_asset_name(size))
        assert asset.urls[0].startswith("https://huggingface.co/openai-community/gpt2")
    with pytest.raises(ValueError, match="choose one of 124M, 355M, 774M, 1558M"):
        gpt2_asset_name("125M")


def test_assets_registered_at_run_time_are_checked_against_the_table():
    from llms_from_scratch.data import register_asset

    verdict = get_asset("the-verdict")
    assert register_asset(verdict) is verdict  # identical details: allowed, changes nothing
    with pytest.raises(ValueError, match="already registered with different details"):
        register_asset(Asset("the-verdict", "other.txt", ("http://127.0.0.1/x",), "0" * 64, None, "test", "x"))
