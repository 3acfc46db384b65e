"""The KV caches: the plain cache owns the positions and refuses to overflow; the ring-buffer cache of
sliding-window layers equals recomputing everything with the window mask, and its memory stays at the window."""

from __future__ import annotations

import pytest
import torch
from zoo_reference import random_model, stepwise_logits

from llms_from_scratch.models import get_config
from llms_from_scratch.nn import KVCache, RingKVCache

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(vocab_size=256, emb_dim=32, n_layers=2, hidden_dim=48, context_length=256)


def test_kv_cache_owns_position_and_rejects_overflow():
    cache = KVCache(n_layers=1, batch_size=2, n_kv_groups=1, head_dim=4, max_length=5)
    start, pos = cache.append_tokens(torch.tensor([[0, 1, 1], [1, 1, 1]]))
    assert start == 0 and pos.tolist() == [[0, 0, 1], [0, 1, 2]]
    start, pos = cache.append_tokens(torch.ones(2, 1, dtype=torch.long))
    assert start == 3 and pos.tolist() == [[2], [3]] and cache.length == 4
    with pytest.raises(ValueError, match="overflow"):
        cache.append_tokens(torch.ones(2, 2, dtype=torch.long))
    cache.reset()
    assert cache.length == 0 and cache.next_position.tolist() == [0, 0]


def test_kv_cache_remembers_padding_and_keeps_a_buffer_per_layer():
    cache = KVCache(n_layers=3, batch_size=2, n_kv_groups=1, head_dim=4, max_length=6)
    cache.append_tokens(torch.ones(2, 2, dtype=torch.long))
    assert not cache.has_padding
    cache.append_tokens(torch.tensor([[1], [0]]))
    assert cache.has_padding
    cache.append_tokens(torch.ones(2, 1, dtype=torch.long), padded=False)
    assert cache.has_padding  # padding written earlier still needs a mask
    cache.reset()
    assert not cache.has_padding
    cache.append_tokens(torch.ones(2, 1, dtype=torch.long), padded=True)  # the caller's word is taken
    assert cache.has_padding
    # separate buffers, not views of one tensor: a compiled step then writes one layer without copying the others
    buffers = cache.keys_per_layer + cache.values_per_layer
    assert len(buffers) == 6 and all(t._base is None for t in buffers)
    assert len({t.data_ptr() for t in buffers}) == 6


@pytest.mark.parametrize("layer_types", [("sliding", "sliding"), ("full", "sliding")])
def test_ring_cache_equals_full_recomputation_with_window_mask(layer_types):
    cfg = get_config("mistral-7b-v0.1", **SMALL, n_heads=4, n_kv_groups=2, head_dim=8, sliding_window=4,
                     layer_types=layer_types)
    model = random_model(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :6] = 0  # a left-padded row
    with torch.no_grad():
        full = model(ids, mask)
    # prefill longer than the window, chunks shorter and longer than it, then single-token decode steps
    stepped, cache = stepwise_logits(model, ids, mask, [9, 1, 3, 7, 2] + [1] * 18)
    assert isinstance(cache, RingKVCache)
    real = mask.bool()
    torch.testing.assert_close(stepped[real], full[real], atol=1e-5, rtol=1e-5)


def test_ring_cache_memory_stays_at_the_window():
    cfg = get_config("mistral-7b-v0.1", **SMALL, n_heads=4, n_kv_groups=2, head_dim=8, sliding_window=4)
    model = random_model(cfg)
    short, long = model.new_cache(1, 64), model.new_cache(1, 4096)
    per_token = 2 * cfg.n_layers * cfg.resolved_kv_groups * cfg.resolved_head_dim * 4  # k and v, fp32 bytes
    assert short.nbytes() == long.nbytes() == 4 * per_token
    # a mixed model keeps full-length buffers only for its full-attention layers
    mixed = random_model(cfg.replace(layer_types=("full", "sliding"))).new_cache(1, 4096)
    assert mixed.nbytes() == (4096 + 4) * per_token // 2
