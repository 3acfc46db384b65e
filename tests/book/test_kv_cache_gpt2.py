"""kv_cache.gpt2: chapter 4's GPT with a KV cache gives chapter 4's logits and tokens, and the notebook holds its code."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import nbformat
import pytest
import torch
from notebook_defs import load_notebook_definitions

from llms_from_scratch import ch04
from llms_from_scratch.kv_cache import gpt2
from llms_from_scratch.kv_cache.generate import generate_text_simple, generate_text_simple_stream
from llms_from_scratch.kv_cache.utils import KVCache

pytestmark = pytest.mark.usefixtures("one_thread")

NOTEBOOK = Path(__file__).resolve().parents[2] / "ch04" / "03_kv-cache" / "kv-cache.ipynb"
CFG = {"vocab_size": 97, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.1,
       "qkv_bias": True}


def _models(seed: int = 0) -> tuple[ch04.GPTModel, gpt2.GPTModel]:
    """A chapter 4 model and a cached model holding the same (random) weights, both in eval mode."""
    torch.manual_seed(seed)
    chapter = ch04.GPTModel(CFG).eval()
    cached = gpt2.GPTModel(CFG).eval()
    cached.load_state_dict(chapter.state_dict())
    return chapter, cached


def _ids(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, CFG["vocab_size"], shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ weights


def test_same_seed_gives_the_chapter_weights_under_the_chapter_keys():
    torch.manual_seed(7)
    chapter = ch04.GPTModel(CFG)
    torch.manual_seed(7)
    cached = gpt2.GPTModel(CFG)
    a, b = chapter.state_dict(), cached.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_state_dicts_move_both_ways_and_the_cache_stays_out_of_them():
    chapter, cached = _models()
    keys = list(cached.state_dict())
    with torch.no_grad():
        cached(_ids(2, 5), use_cache=True)
    assert cached.current_pos == 5
    assert list(cached.state_dict()) == keys  # a filled cache adds nothing to the state dict

    with torch.no_grad():
        for p in cached.parameters():
            p.add_(0.01 * torch.randn_like(p))
    back = ch04.GPTModel(CFG).eval()
    back.load_state_dict(cached.state_dict())
    x = _ids(2, 9)
    with torch.no_grad():
        assert torch.equal(back(x), cached(x))


def test_uncached_forward_equals_chapter_forward():
    chapter, cached = _models()
    x = _ids(3, CFG["context_length"])
    with torch.no_grad():
        torch.testing.assert_close(cached(x), chapter(x), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------ cached forward


@pytest.mark.parametrize("chunks", [[16], [5, 1, 1, 1], [1] * 9, [3, 4, 2, 7]])
def test_cached_logits_equal_uncached_logits(chunks):
    chapter, cached = _models()
    x = _ids(2, sum(chunks))
    with torch.no_grad():
        expected = chapter(x)
        cached.reset_kv_cache()
        pieces, start = [], 0
        for n in chunks:
            pieces.append(cached(x[:, start:start + n], use_cache=True))
            start += n
    torch.testing.assert_close(torch.cat(pieces, dim=1), expected, rtol=1e-5, atol=1e-5)
    assert cached.current_pos == sum(chunks)


def test_attention_layer_alone_gives_the_same_outputs_in_pieces():
    torch.manual_seed(2)
    att = gpt2.MultiHeadAttention(8, 8, context_length=10, dropout=0.0, num_heads=2).eval()
    x = torch.randn(2, 10, 8)
    with torch.no_grad():
        whole = att(x)
        pieces = [att(x[:, :6], use_cache=True)] + [att(x[:, t:t + 1], use_cache=True) for t in range(6, 10)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=1e-5, atol=1e-6)
    assert att.cache_k.shape == (2, 2, 10, 4)  # (batch, num_heads, tokens, head_dim)
    att.reset_cache()
    assert att.cache_k is None and att.cached_tokens == 0


def test_reset_kv_cache_separates_prompts():
    chapter, cached = _models()
    a, b = _ids(1, 6, seed=3), _ids(1, 4, seed=4)
    with torch.no_grad():
        cached(a, use_cache=True)
        continued = cached(b, use_cache=True)  # without a reset, b continues a at positions 6..9
        cached.reset_kv_cache()
        assert cached.current_pos == 0
        fresh = cached(b, use_cache=True)
        torch.testing.assert_close(fresh, chapter(b), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(continued, chapter(torch.cat([a, b], dim=1))[:, 6:], rtol=1e-5, atol=1e-5)


def test_too_long_a_sequence_is_refused_and_leaves_the_cache_usable():
    chapter, cached = _models()
    x = _ids(2, 16)
    with torch.no_grad():
        cached(x[:, :15], use_cache=True)
        with pytest.raises(ValueError, match=r"Sequence length 17 exceeds the context length of 16 tokens"):
            cached(x[:, :2], use_cache=True)
        assert cached.current_pos == 15
        last = cached(x[:, 15:], use_cache=True)
        torch.testing.assert_close(last, chapter(x)[:, 15:], rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match=r"Sequence length 17 exceeds"):
            cached(_ids(1, 17))


# ----------------------------------------------------------------------------------------------- generation


@pytest.mark.parametrize(
    ("prompt_len", "max_new_tokens", "context_size"),
    [
        (5, 8, None),  # well inside the context
        (1, 15, None),  # fills the context exactly
        (5, 20, None),  # runs past it: the window slides and the cache is refilled
        (6, 10, 4),  # a window smaller than the model's context, and a prompt longer than it
        (3, 0, None),
    ],
)
def test_cached_generation_equals_chapter_generation_token_for_token(prompt_len, max_new_tokens, context_size):
    chapter, cached = _models(seed=5)
    idx = _ids(2, prompt_len, seed=6)
    expected = ch04.generate_text_simple(chapter, idx, max_new_tokens, context_size or CFG["context_length"])
    got = gpt2.generate_text_simple_cached(cached, idx, max_new_tokens, context_size=context_size)
    assert torch.equal(got, expected)
    uncached = gpt2.generate_text_simple_cached(cached, idx, max_new_tokens, context_size, use_cache=False)
    assert torch.equal(uncached, expected)


def test_generation_resets_the_cache_between_prompts():
    chapter, cached = _models(seed=8)
    a, b = _ids(1, 7, seed=9), _ids(1, 3, seed=10)
    gpt2.generate_text_simple_cached(cached, a, 5)
    assert torch.equal(gpt2.generate_text_simple_cached(cached, b, 5), ch04.generate_text_simple(chapter, b, 5, 16))


def test_generation_rejects_a_negative_token_count():
    _, cached = _models()
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0"):
        gpt2.generate_text_simple_cached(cached, _ids(1, 3), -1)


def test_kv_cache_generate_functions_drive_the_model_through_a_kvcache_object():
    chapter, cached = _models(seed=11)
    idx = _ids(2, 5, seed=12)
    expected = ch04.generate_text_simple(chapter, idx, 9, CFG["context_length"])
    assert torch.equal(generate_text_simple(cached, idx, 9), expected)
    assert torch.equal(generate_text_simple(cached, idx, 9, use_cache=False), expected)
    streamed = list(generate_text_simple_stream(cached, idx, 9))
    assert torch.equal(torch.cat([idx, *streamed], dim=1), expected)


def test_a_kvcache_object_holds_each_layers_keys_and_values():
    _, cached = _models()
    cache = KVCache(n_layers=CFG["n_layers"])
    with torch.no_grad():
        cached(_ids(1, 4), cache=cache)
        cached.reset_kv_cache()  # the modules' own copy goes; the KVCache still holds the sequence
        cached(_ids(1, 1, seed=2), cache=cache)
    for keys, values in cache.get_all():
        assert keys.shape == values.shape == (1, CFG["n_heads"], 5, CFG["emb_dim"] // CFG["n_heads"])
    assert cached.current_pos == 5


def test_stream_stops_when_every_row_says_eos():
    _, cached = _models()
    with torch.no_grad():
        cached.out_head.weight.zero_()  # every logit 0: argmax picks token 0
    assert list(generate_text_simple_stream(cached, _ids(2, 3), 8, eos_token_id=0)) == []
    assert len(list(generate_text_simple_stream(cached, _ids(2, 3), 8, eos_token_id=1))) == 8


# ----------------------------------------------------------------------------------- notebook and package


def _notebook_sources() -> dict[str, str]:
    """Source text of every top-level function and class the notebook defines (the last definition wins)."""
    sources = {}
    for cell in nbformat.read(NOTEBOOK, as_version=4).cells:
        if cell.cell_type == "code":
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    sources[node.name] = ast.get_source_segment(cell.source, node)
    return sources


@pytest.mark.parametrize(
    "name", ["check_context_length", "MultiHeadAttention", "TransformerBlock", "GPTModel", "generate_text_simple_cached"]
)
def test_notebook_defines_exactly_the_package_code(name):
    notebook = _notebook_sources()
    assert name in notebook, f"kv-cache.ipynb does not define {name}"
    package = inspect.getsource(getattr(gpt2, name)).rstrip("\n")
    assert notebook[name] == package, f"{name} differs between kv-cache.ipynb and kv_cache/gpt2.py: copy one to the other"


def test_notebook_classes_behave_like_the_package():
    nb = load_notebook_definitions(NOTEBOOK)
    chapter, cached = _models(seed=13)
    mine = nb.GPTModel(CFG).eval()
    mine.load_state_dict(chapter.state_dict())
    idx = _ids(2, 4, seed=14)
    assert torch.equal(nb.generate_text_simple_cached(mine, idx, 14), gpt2.generate_text_simple_cached(cached, idx, 14))
    assert nb.LayerNorm is gpt2.LayerNorm and nb.FeedForward is gpt2.FeedForward and nb.GELU is gpt2.GELU
