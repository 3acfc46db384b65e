"""Two helpers the book's tests and bonus material use: fetch a file by URL, and import a notebook's definitions.

``download_file`` goes through the data layer where it can: a URL that belongs to a registered asset is
fetched with its checksum (cache, then ``$LLMS_DATA_MIRROR``, then the network); any other URL is served from
the mirror when a file of that name is there, and downloaded otherwise. Downloads stream into a temporary file
beside the target and are renamed into place, so an interrupted download leaves nothing behind.
"""

from __future__ import annotations

import ast
import json
import shutil
import types
import urllib.parse
from pathlib import Path
from typing import Any

from llms_from_scratch.data import (
    MIRROR_ENV,
    Asset,
    AssetUnavailableError,
    DownloadError,
    download_url,
    fetch_asset,
    list_assets,
    mirror_dir,
)
from llms_from_scratch.data.download import DEFAULT_TIMEOUT
from llms_from_scratch.files import atomic_path

__all__ = ["download_file", "import_definitions_from_notebook"]

def download_file(url: str, out_dir: str | Path = ".", *, timeout: float = DEFAULT_TIMEOUT,
                  quiet: bool = False) -> Path:
    """Save the file at ``url`` as ``out_dir/<its file name>`` and return that path; an existing file is kept.

    Raises :class:`~llms_from_scratch.data.AssetUnavailableError` (a ``RuntimeError``) naming what was tried
    and how to supply the file by hand.
    """
    filename = urllib.parse.urlparse(url).path.rsplit("/", 1)[-1]  # empty for a folder URL ending in "/"
    if not filename:
        raise ValueError(f"cannot tell a file name from the URL {url!r}; give the URL of a file, not of a folder")
    dest = Path(out_dir) / filename
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)

    asset = _asset_for_url(url)
    if asset is not None:
        _copy_atomically(fetch_asset(asset, quiet=quiet, timeout=timeout), dest)  # checksum-verified
        return dest

    mirror = mirror_dir()
    if mirror is not None and (mirror / filename).is_file():
        _copy_atomically(mirror / filename, dest)
        return dest

    try:
        download_url(url, dest, timeout=timeout, quiet=quiet)
    except DownloadError as exc:
        mirror_note = f"{MIRROR_ENV} is not set" if mirror is None else f"{mirror / filename} does not exist"
        raise AssetUnavailableError(
            f"could not download {url}: {exc} ({mirror_note}). Supply the file by hand: set {MIRROR_ENV} to a "
            f"folder that holds {filename!r}, or place it at {dest}"
        ) from None
    return dest


def _asset_for_url(url: str) -> Asset | None:
    """The registered asset whose bytes ``url`` serves as they are, or ``None`` (zip-served assets excluded)."""
    for asset in list_assets():
        if url in asset.urls and asset.archive_member is None:
            return asset
    return None


def _copy_atomically(source: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)


# ------------------------------------------------------------------------------------ definitions of a notebook


def _is_definition(node: ast.stmt) -> bool:
    """Imports, functions, classes and assignments to UPPER_CASE names; everything else is an experiment."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return all(isinstance(t, ast.Name) and t.id.isupper() for t in targets)
    return False


def import_definitions_from_notebook(nb_dir_or_path: str | Path, notebook_name: str | None = None, *,
                                     extra_globals: dict[str, Any] | None = None) -> types.ModuleType:
    """Run a notebook's top-level imports, functions, classes and UPPER_CASE constants; return them as a module.

    Pass a notebook's path, or its folder and ``notebook_name``. Everything else (training runs, downloads,
    prints) is skipped, so importing is quick and has no side effects. Cells run in order and a later
    definition replaces an earlier one, as in Jupyter; IPython magics (``%``) and shell lines (``!``) are
    ignored. ``extra_globals`` are placed in the module before anything runs.
    """
    path = Path(nb_dir_or_path)
    if notebook_name is not None and path.is_dir():
        path = path / notebook_name
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}; pass the notebook's path, or its folder and notebook_name")

    # a notebook is JSON (nbformat 4): reading it directly keeps nbformat out of the runtime dependencies
    with open(path, encoding="utf-8") as f:
        cells = json.load(f).get("cells", [])
    module = types.ModuleType(path.stem.replace("-", "_").replace(" ", "_"))
    module.__file__ = str(path)
    module.__dict__.update(extra_globals or {})
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        text = cell.get("source", "")
        text = "".join(text) if isinstance(text, list) else text  # stored as a list of lines or one string
        source = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise SyntaxError(f"{path}: code cell {index} does not parse: {exc}") from exc
        kept = [node for node in tree.body if _is_definition(node)]
        if kept:
            exec(compile(ast.Module(body=kept, type_ignores=[]), str(path), "exec"), module.__dict__)
    return module
