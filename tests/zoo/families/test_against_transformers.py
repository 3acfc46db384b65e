"""Every decoder family equals `transformers` on random weights (fp32, eager attention and experts).

The cases are the shared table in ``tests/support/family_cases.py``. Each reference is saved with
``save_pretrained`` and loaded with ``load_hf_checkpoint``; logits, greedy and batched continuations, the cache,
the decode set-ups and the save round trip are then compared case by case.
"""

from __future__ import annotations

import pytest
import torch

from llms_from_scratch.generation import generate, left_pad
from llms_from_scratch.models import load_hf_checkpoint, save_hf_checkpoint
from llms_from_scratch.nn import DecodePlan, build_decoding_model
from llms_from_scratch.nn.decode_layout import SEPARATE, available_kernels, decode_sites

transformers = pytest.importorskip("transformers")
from family_cases import CASES, logit_tolerance  # noqa: E402
from zoo_reference import hf_load_kwargs, hf_reference  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPTS = [[5, 17, 300, 42, 8, 99, 123, 7, 250, 3, 11], [401, 2, 77], [9, 8, 7, 6, 5, 4, 3]]
NEW_TOKENS = 8


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request, tmp_path_factory):
    cfg = CASES[request.param]
    ref = hf_reference(cfg)
    folder = tmp_path_factory.mktemp(request.param)
    ref.save_pretrained(folder)
    ours = load_hf_checkpoint(folder)
    return request.param, ref, ours


def test_config_is_the_shrunk_named_one(pair):
    name, _, ours = pair
    assert ours.cfg == CASES[name]


def test_logits_match(pair):
    name, ref, ours = pair
    ids = torch.tensor([PROMPTS[0] + PROMPTS[2]])
    with torch.no_grad():
        expected = ref(ids).logits
        got = ours(ids)
    assert expected.abs().max() > 1.0  # the comparison is meaningful: logits spread over several units
    tol = logit_tolerance(name)
    torch.testing.assert_close(got, expected, atol=tol, rtol=tol)


def test_greedy_continuation_matches(pair):
    _, ref, ours = pair
    ids = torch.tensor([PROMPTS[0]])
    expected = ref.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
    got = generate(ours, ids, NEW_TOKENS)
    assert got.tolist() == expected.tolist()


def _uniform_plan(model, rows: int, kernel: str, fuse: bool) -> DecodePlan:
    """Every linear layer on ``kernel``; every projection group stacked (on ``kernel``) or left separate."""
    linears, groups = decode_sites(model)
    return DecodePlan(rows, torch.float32, {key: kernel for key in linears} | {
        key: kernel if fuse else SEPARATE for key in groups})


def test_decode_layout_gives_the_same_tokens(pair):
    """Decode set-ups that the autotuner may choose keep transformers' logits and greedy tokens: at batch 1 split
    products with stacked projections, for a batch oneDNN's products (where this PyTorch has them)."""
    name, ref, ours = pair
    fast = build_decoding_model(ours, _uniform_plan(ours, 1, "split", fuse=True))
    ids = torch.tensor([PROMPTS[0]])
    tol = logit_tolerance(name)
    with torch.no_grad():
        torch.testing.assert_close(fast(ids), ref(ids).logits, atol=tol, rtol=tol)
    expected = ref.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
    assert generate(fast, ids, NEW_TOKENS).tolist() == expected.tolist()
    batch_ids, mask = left_pad(PROMPTS)
    kernel = "onednn" if "onednn" in available_kernels() else "split"
    fast = build_decoding_model(ours, _uniform_plan(ours, len(PROMPTS), kernel, fuse=False))
    expected = ref.generate(batch_ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False)
    assert generate(fast, batch_ids, NEW_TOKENS, attention_mask=mask).tolist() == expected.tolist()


def test_cached_equals_uncached(pair):
    name, _, ours = pair
    ids, mask = left_pad(PROMPTS)
    # step logits from the cache versus one full forward pass over the finished sequences
    cached = generate(ours, ids, NEW_TOKENS, attention_mask=mask)
    uncached = generate(ours, ids, NEW_TOKENS, attention_mask=mask, use_cache=False)
    assert cached.tolist() == uncached.tolist()
    full_mask = torch.cat([mask, torch.ones(len(PROMPTS), NEW_TOKENS, dtype=mask.dtype)], dim=1)
    cache = ours.new_cache(len(PROMPTS), cached.shape[1])
    with torch.no_grad():
        full = ours(cached, full_mask)
        steps = [ours(cached[:, : ids.shape[1]], mask, cache=cache)]
        for t in range(ids.shape[1], cached.shape[1]):
            steps.append(ours(cached[:, t : t + 1], full_mask[:, t : t + 1], cache=cache))
    stepped = torch.cat(steps, dim=1)
    real = full_mask.bool()
    tol = logit_tolerance(name)
    torch.testing.assert_close(stepped[real], full[real], atol=tol, rtol=tol)


def test_batched_equals_single(pair):
    _, ref, ours = pair
    ids, mask = left_pad(PROMPTS)
    batched = generate(ours, ids, NEW_TOKENS, attention_mask=mask)
    for row, prompt in enumerate(PROMPTS):
        single = generate(ours, torch.tensor([prompt]), NEW_TOKENS)
        assert batched[row, -NEW_TOKENS:].tolist() == single[0, -NEW_TOKENS:].tolist()
    # and transformers, given the same left-padded batch, continues the same way
    expected = ref.generate(ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False)
    assert batched.tolist() == expected.tolist()


def test_save_round_trip_in_transformers(pair, tmp_path):
    _, ref, ours = pair
    save_hf_checkpoint(ours, tmp_path)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, **hf_load_kwargs(ours.cfg)).eval()
    ids = torch.tensor([PROMPTS[0]])
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, ref(ids).logits)
    assert load_hf_checkpoint(tmp_path).cfg == ours.cfg


def test_correction_bias_changes_the_routing(tmp_path):
    """Guard that the DeepSeek case exercises the selection-only bias: without it other experts win."""
    from llms_from_scratch.nn.moe import route

    hf_reference(CASES["deepseek-v3"]).save_pretrained(tmp_path)
    moe = load_hf_checkpoint(tmp_path).trf_blocks[-1].ff
    assert moe.correction_bias.abs().min() > 0
    x = torch.randn(64, moe.gate.in_features, generator=torch.Generator().manual_seed(0))
    logits = moe.gate(x)
    _, with_bias = route(logits, moe.cfg, moe.correction_bias)
    _, without = route(logits, moe.cfg, None)
    assert not torch.equal(with_bias.sort(dim=-1).values, without.sort(dim=-1).values)
