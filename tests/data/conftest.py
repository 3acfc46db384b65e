"""What the data-layer tests share."""

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty cache and no mirror, so every test starts from the network."""
    root = tmp_path / "cache"
    monkeypatch.setenv("LLMS_CACHE_DIR", str(root))
    monkeypatch.delenv("LLMS_DATA_MIRROR", raising=False)
    return root
