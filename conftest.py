"""Test-wide settings: quick mode on, so notebooks run by nbval and the tests use small data and models.

Kernels started by nbval inherit this process's environment, so setting the variables here reaches them.
Running ``pytest`` by hand therefore behaves like ``make test``: a folder of the book's data files beside the
checkout (``../shared/data``) serves as the data layer's mirror unless ``LLMS_DATA_MIRROR`` says otherwise, and
tiktoken gets a writable copy of the mirror's ready GPT-2 files, so nothing needs the network.
"""

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent

os.environ.setdefault("LLMS_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")  # plots render to files, never to a window

_mirror = ROOT.parent / "shared" / "data"
if "LLMS_DATA_MIRROR" not in os.environ and _mirror.is_dir():
    os.environ["LLMS_DATA_MIRROR"] = str(_mirror)

_tiktoken_files = Path(os.environ.get("LLMS_DATA_MIRROR") or _mirror) / "tiktoken_cache"
if "TIKTOKEN_CACHE_DIR" not in os.environ and _tiktoken_files.is_dir():
    # tiktoken writes into its cache and the mirror may be read-only: copy the bytes, not the permissions
    _cache = ROOT / ".cache" / "tiktoken"
    _cache.mkdir(parents=True, exist_ok=True)
    for _file in _tiktoken_files.iterdir():
        if _file.is_file() and not (_cache / _file.name).exists():
            shutil.copyfile(_file, _cache / _file.name)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_cache)

# the tests' shared helpers (notebook_defs, zoo_reference, local_http, ...) live in tests/support
sys.path.insert(0, str(ROOT / "tests" / "support"))
