"""The book's names for the SDPA bonus classes, kv_cache.gpt2, kv_cache.generate/utils, generate and utils.

Each entry lists the book's positional-or-keyword parameters with their defaults, in order. Where this package
accepts more, the extra parameters come after them and have defaults (or are keyword-only), so the book's calls
work unchanged.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

REQUIRED = inspect.Parameter.empty

# (module, dotted name): [(parameter, default)], without self
API = {
    ("ch03", "PyTorchMultiHeadAttention"): [
        ("d_in", REQUIRED), ("d_out", REQUIRED), ("num_heads", REQUIRED), ("dropout", 0.0), ("qkv_bias", False)],
    ("ch04", "FeedForwardFast"): [("cfg", REQUIRED)],
    ("ch04", "TransformerBlockFast"): [("cfg", REQUIRED)],
    ("ch04", "GPTModelFast"): [("cfg", REQUIRED)],
    ("ch04", "GPTModelFast.forward"): [("in_idx", REQUIRED)],
    ("generate", "trim_input_tensor"): [("input_ids_tensor", REQUIRED), ("context_len", REQUIRED),
                                        ("max_new_tokens", REQUIRED)],
    ("utils", "download_file"): [("url", REQUIRED), ("out_dir", ".")],
    ("utils", "import_definitions_from_notebook"): [("nb_dir_or_path", REQUIRED), ("notebook_name", None)],
    ("kv_cache.gpt2", "MultiHeadAttention"): [
        ("d_in", REQUIRED), ("d_out", REQUIRED), ("context_length", REQUIRED), ("dropout", REQUIRED),
        ("num_heads", REQUIRED), ("qkv_bias", False)],
    ("kv_cache.gpt2", "LayerNorm"): [("emb_dim", REQUIRED)],
    ("kv_cache.gpt2", "GELU"): [],
    ("kv_cache.gpt2", "FeedForward"): [("cfg", REQUIRED)],
    ("kv_cache.gpt2", "TransformerBlock"): [("cfg", REQUIRED)],
    ("kv_cache.gpt2", "GPTModel"): [("cfg", REQUIRED)],
    ("kv_cache.gpt2", "GPTModel.forward"): [("in_idx", REQUIRED), ("use_cache", False)],
    ("kv_cache.gpt2", "GPTModel.reset_kv_cache"): [],
    ("kv_cache.gpt2", "generate_text_simple_cached"): [
        ("model", REQUIRED), ("idx", REQUIRED), ("max_new_tokens", REQUIRED), ("context_size", None),
        ("use_cache", True)],
    ("kv_cache.utils", "KVCache"): [("n_layers", REQUIRED)],
    ("kv_cache.utils", "KVCache.get"): [("layer_idx", REQUIRED)],
    ("kv_cache.utils", "KVCache.update"): [("layer_idx", REQUIRED), ("value", REQUIRED)],
    ("kv_cache.utils", "KVCache.get_all"): [],
    ("kv_cache.utils", "KVCache.reset"): [],
    ("kv_cache.generate", "generate_text_simple"): [
        ("model", REQUIRED), ("idx", REQUIRED), ("max_new_tokens", REQUIRED), ("context_size", None),
        ("use_cache", True)],
    ("kv_cache.generate", "generate_text_simple_stream"): [
        ("model", REQUIRED), ("token_ids", REQUIRED), ("max_new_tokens", REQUIRED), ("eos_token_id", None),
        ("context_size", None)],
}


def _resolve(module: str, dotted: str):
    obj = importlib.import_module(f"llms_from_scratch.{module}")
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize(("module", "name"), list(API), ids=[f"{m}.{n}" for m, n in API])
def test_name_imports_with_the_books_parameters(module, name):
    obj = _resolve(module, name)
    params = [p for p in inspect.signature(obj).parameters.values() if p.name != "self"]
    positional = [p for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    book = API[(module, name)]
    assert [(p.name, p.default) for p in positional[:len(book)]] == book
    extra = positional[len(book):] + [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert all(p.default is not REQUIRED for p in extra), f"{name}: added parameters need defaults: {extra}"


def test_kv_cache_gpt2_reuses_the_chapter_classes():
    from llms_from_scratch import ch04
    from llms_from_scratch.kv_cache import gpt2

    assert gpt2.LayerNorm is ch04.LayerNorm and gpt2.GELU is ch04.GELU and gpt2.FeedForward is ch04.FeedForward
    assert gpt2.KVCache is _resolve("kv_cache.utils", "KVCache")
