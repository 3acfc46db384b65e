"""Looking assets up by name: the table in :mod:`.assets`, plus any asset a program adds while it runs.

Every chapter, script and test asks for files by name (``fetch("the-verdict")``). The package's own files are
all listed in :data:`~.assets.ASSETS`; :func:`register_asset` is for files outside the package (a test's or a
notebook's own), added at run time by the code that needs them. Importing a module registers nothing.
"""

from __future__ import annotations

import difflib

from .asset import Asset
from .assets import ASSETS

__all__ = ["Asset", "get_asset", "list_assets", "register_asset"]


def _index(assets: tuple[Asset, ...]) -> dict[str, Asset]:
    table: dict[str, Asset] = {}
    for asset in assets:
        if asset.name in table:
            raise ValueError(f"the asset table lists {asset.name!r} twice")
        table[asset.name] = asset
    return table


_TABLE = _index(ASSETS)
_ADDED: dict[str, Asset] = {}  # registered at run time


def register_asset(asset: Asset) -> Asset:
    """Make ``asset`` fetchable by name in this process; re-registering identical details is allowed, a
    different asset under a taken name (the package's included) is an error."""
    known = _TABLE.get(asset.name) or _ADDED.get(asset.name)
    if known is not None and known != asset:
        raise ValueError(f"an asset named {asset.name!r} is already registered with different details")
    if asset.name not in _TABLE:
        _ADDED[asset.name] = asset
    return asset


def get_asset(name: str) -> Asset:
    """Look an asset up by name; an unknown name raises a ``KeyError`` that suggests close matches."""
    asset = _TABLE.get(name) or _ADDED.get(name)
    if asset is not None:
        return asset
    known = [*_TABLE, *_ADDED]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise KeyError(f"unknown asset {name!r}.{hint} Known assets: {', '.join(sorted(known))}.")


def list_assets() -> list[Asset]:
    """The package's assets and those registered at run time, sorted by name."""
    assets = {**_TABLE, **_ADDED}
    return [assets[k] for k in sorted(assets)]
