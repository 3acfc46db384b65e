"""The data layer: every download in the book goes through here.

>>> from llms_from_scratch.data import fetch
>>> text = fetch("the-verdict").read_text(encoding="utf-8")

Sources are tried in order: the cache (``$LLMS_CACHE_DIR`` or the user cache folder), a local mirror
(``$LLMS_DATA_MIRROR``, for offline machines), then the canonical URL and any backups. Every file the package
knows is listed in one table, :data:`ASSETS` (``data/assets.py``). No URL may send more than the file's size
or take longer than its deadline (``data/limits.py``; ``$LLMS_DOWNLOAD_DEADLINE`` sets the seconds).
"""

from .asset import Asset
from .assets import ASSETS, gpt2_asset_name
from .download import (
    CACHE_ENV,
    MIRROR_ENV,
    AssetUnavailableError,
    DownloadError,
    cache_dir,
    download_url,
    fetch,
    fetch_asset,
    mirror_dir,
    sha256_of,
)
from .registry import get_asset, list_assets, register_asset
from .tokenizer import gpt2_encoding

__all__ = [
    "ASSETS",
    "CACHE_ENV",
    "MIRROR_ENV",
    "Asset",
    "AssetUnavailableError",
    "DownloadError",
    "cache_dir",
    "download_url",
    "fetch",
    "fetch_asset",
    "get_asset",
    "gpt2_asset_name",
    "gpt2_encoding",
    "list_assets",
    "mirror_dir",
    "read_text",
    "register_asset",
    "sha256_of",
]


def read_text(name: str) -> str:
    """Fetch an asset and return its contents decoded as UTF-8."""
    return fetch(name).read_text(encoding="utf-8")
