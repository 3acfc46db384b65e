"""The zoo's bonus notebooks agree with the package: their hand-written pieces equal the package's."""

from __future__ import annotations

from pathlib import Path

import torch
from notebook_defs import load_notebook_definitions

from llms_from_scratch.models import get_config
from llms_from_scratch.nn import GroupedQueryAttention, KVCache

ROOT = Path(__file__).resolve().parents[2]


# the gpt-to-llama notebook defines the book's llama3 module; tests/book/test_llama3.py checks it against the
# package and against the zoo


def test_kv_cache_estimate_equals_the_allocated_cache():
    nb = load_notebook_definitions(ROOT / "ch04/03_kv-cache/kv-cache.ipynb")
    cfg = get_config("qwen3-0.6b", n_layers=3)
    cache = KVCache(cfg.n_layers, 2, cfg.n_kv_groups, cfg.head_dim, 64, dtype=torch.bfloat16)
    allocated = sum(t.nbytes for t in cache.keys_per_layer + cache.values_per_layer)
    assert nb.kv_cache_bytes(cfg, 64, batch_size=2) == cache.nbytes() == allocated


def test_naive_gqa_of_the_notebook_equals_the_package():
    nb = load_notebook_definitions(ROOT / "ch04/04_gqa/gqa.ipynb")
    torch.manual_seed(0)
    x = torch.randn(1, 5, 32)
    for groups in (4, 2, 1):
        att = GroupedQueryAttention(32, 4, groups, 8).eval()
        with torch.no_grad():
            torch.testing.assert_close(nb.naive_attention(att, x), att(x, None), atol=1e-6, rtol=1e-5)
    assert nb.kv_bytes(32, 8, 128, 131072) == 16 * 2**30
