"""The book's cached Qwen3 models: ``kv_cache.qwen3`` equals the plain model, ``kv_cache_batched`` equals one
prompt at a time.

* cached = uncached: the logits of a prompt fed at once and then token by token through the cache equal one
  forward pass over the whole sequence, and greedy generation gives the same tokens (dense and MoE);
* batched = single: prompts of several lengths, padded on the left and generated together, give each row the
  tokens that prompt gets alone (with and without the cache, and with a context window shorter than the prompts).
"""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.ch04 import generate_text_simple as generate_plain
from llms_from_scratch.kv_cache.generate import generate_text_simple as generate_cached
from llms_from_scratch.kv_cache.qwen3 import Qwen3Model as Qwen3ModelKV
from llms_from_scratch.kv_cache.utils import KVCache
from llms_from_scratch.kv_cache_batched.generate import generate_text_simple as generate_batched
from llms_from_scratch.kv_cache_batched.qwen3 import Qwen3Model as Qwen3ModelBatched
from llms_from_scratch.kv_cache_batched.utils import KVCache as BatchedKVCache
from llms_from_scratch.qwen3 import Qwen3Model

pytestmark = pytest.mark.usefixtures("one_thread")

DENSE = {"vocab_size": 200, "context_length": 48, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "hidden_dim": 48,
         "head_dim": 16, "qk_norm": True, "n_kv_groups": 2, "rope_base": 10_000.0, "dtype": torch.float32}
MOE = {**DENSE, "num_experts": 6, "num_experts_per_tok": 2, "moe_intermediate_size": 16}
CONFIGS = {"dense": DENSE, "moe": MOE}
PROMPTS = [[5, 17, 150, 42, 8, 99, 123, 7, 25, 3, 11], [101, 2, 77], [9, 8, 7, 6, 5, 4, 3], [60]]
PAD = 0  # any id: padding is never attended to


def _weights(cfg: dict) -> dict[str, torch.Tensor]:
    """Random weights with spread-out logits (the default init makes near-ties between tokens likely)."""
    torch.manual_seed(0)
    model = Qwen3Model(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.1 * torch.randn_like(p) if "norm" in name else 0.3 * torch.randn_like(p))
    return model.state_dict()


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def models(request):
    """The plain, cached and batched models of one config, on the same weights."""
    cfg = CONFIGS[request.param]
    state = _weights(cfg)
    out = []
    for cls in (Qwen3Model, Qwen3ModelKV, Qwen3ModelBatched):
        model = cls(cfg)
        model.load_state_dict(state)
        out.append(model.eval())
    return out


def test_the_variants_share_one_state_dict(models):
    plain, cached, batched = models
    assert plain.state_dict().keys() == cached.state_dict().keys() == batched.state_dict().keys()


def test_cached_step_logits_equal_the_full_forward_pass(models):
    plain, cached, _ = models
    ids = torch.tensor([PROMPTS[0] + PROMPTS[2], PROMPTS[2] + PROMPTS[0]])
    with torch.no_grad():
        full = plain(ids)
        assert full.abs().max() > 1.0  # the comparison means something
        cache = KVCache(n_layers=cached.cfg["n_layers"])
        cached.reset_kv_cache()
        steps = [cached(ids[:, :5], cache=cache)]  # a prompt first, then one token at a time
        steps += [cached(ids[:, t : t + 1], cache=cache) for t in range(5, ids.shape[1])]
        torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
        assert cached.current_pos == ids.shape[1]
        assert cache.get(0)[0].shape == (2, cached.cfg["n_kv_groups"], ids.shape[1], cached.cfg["head_dim"])
        # without a cache the cached model is the plain model
        torch.testing.assert_close(cached(ids), full, atol=0, rtol=0)


def test_cached_generation_equals_uncached(models):
    plain, cached, _ = models
    for prompt in PROMPTS:
        ids = torch.tensor([prompt])
        expected = generate_plain(plain, ids, 10, context_size=plain.cfg["context_length"])
        assert generate_cached(cached, ids, 10).tolist() == expected.tolist()
        assert generate_cached(cached, ids, 10, use_cache=False).tolist() == expected.tolist()
    # a second call resets the positions and starts a new cache
    ids = torch.tensor([PROMPTS[0]])
    assert torch.equal(generate_cached(cached, ids, 6), generate_cached(cached, ids, 6))


def test_cached_model_refuses_to_run_past_the_context(models):
    _, cached, _ = models
    cache = KVCache(n_layers=cached.cfg["n_layers"])
    cached.reset_kv_cache()
    with torch.no_grad():
        cached(torch.zeros(1, 40, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="Sequence length 49 exceeds the context length of 48 tokens"):
            cached(torch.zeros(1, 9, dtype=torch.long), cache=cache)


def left_pad(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


@pytest.mark.parametrize("use_cache", [True, False])
def test_batched_left_padded_equals_one_prompt_at_a_time(models, use_cache):
    plain, cached, batched = models
    ids, mask = left_pad(PROMPTS)
    out = generate_batched(batched, ids, 8, use_cache=use_cache, attention_mask=mask)
    assert out.shape == (len(PROMPTS), ids.shape[1] + 8)
    for row, prompt in zip(out, PROMPTS):
        alone = generate_cached(cached, torch.tensor([prompt]), 8)[0]
        assert row[ids.shape[1] :].tolist() == alone[len(prompt) :].tolist()


def test_batched_step_logits_equal_the_plain_model_per_row(models):
    plain, _, batched = models
    ids, mask = left_pad(PROMPTS)
    cache = BatchedKVCache(n_layers=batched.cfg["n_layers"], batch_size=len(PROMPTS))
    batched.reset_kv_cache(batch_size=len(PROMPTS))
    start = -(mask == 0).sum(dim=1)
    nxt = torch.tensor([[1], [2], [3], [4]])
    with torch.no_grad():
        prefill = batched(ids, cache=cache, start_pos=start)
        step = batched(nxt, cache=cache, start_pos=start + ids.shape[1])
        for b, prompt in enumerate(PROMPTS):
            alone = plain(torch.tensor([prompt + [b + 1]]))[0]
            torch.testing.assert_close(prefill[b, -len(prompt) :], alone[:-1], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(step[b, 0], alone[-1], atol=1e-5, rtol=1e-5)
    assert len(cache.get_layer(0)) == len(PROMPTS) and cache.get(1, 3)[0].shape[2] == ids.shape[1] + 1


def test_batched_without_padding_equals_the_cached_model(models):
    """The book's check: the same prompt twice (no padding needed), and a batch of one."""
    _, cached, batched = models
    one = torch.tensor([PROMPTS[0]])
    expected = generate_cached(cached, one, 6)
    assert torch.equal(generate_batched(batched, one, 6, context_size=48), expected)
    assert torch.equal(generate_batched(batched, one.repeat(2, 1), 6)[1], expected[0])


def test_batched_context_window_shorter_than_the_prompts(models):
    """Without the cache each step sees the last ``context_size`` tokens; padding inside the window still counts
    as padding, so every row gets what the plain generator gives that prompt alone."""
    plain, _, batched = models
    ids, mask = left_pad(PROMPTS)
    out = generate_batched(batched, ids, 5, context_size=6, use_cache=False, attention_mask=mask)
    for row, prompt in zip(out, PROMPTS):
        alone = generate_plain(plain, torch.tensor([prompt]), 5, context_size=6)[0]
        assert row[ids.shape[1] :].tolist() == alone[len(prompt) :].tolist()


def test_batched_generation_checks_its_mask(models):
    _, _, batched = models
    ids, mask = left_pad(PROMPTS)
    with pytest.raises(ValueError, match="pad prompts on the left"):
        generate_batched(batched, ids, 2, attention_mask=mask.flip(1))
    with pytest.raises(ValueError, match="must match"):
        generate_batched(batched, ids, 2, attention_mask=mask[:, 1:])
    with pytest.raises(ValueError, match="exceeds the context length of 48 tokens; generate fewer tokens"):
        generate_batched(batched, ids, 40, attention_mask=mask)


def test_batched_kv_cache_keeps_rows_apart():
    cache = BatchedKVCache(n_layers=2, batch_size=3)
    assert cache.get_layer(1) == [None, None, None]
    cache.update(1, 2, "row 2")
    assert cache.get(1, 2) == "row 2" and cache.get(0, 2) is None and cache.get_layer(1)[2] == "row 2"
    cache.reset()
    assert cache.get(1, 2) is None
