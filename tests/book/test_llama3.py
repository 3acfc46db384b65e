"""The book's ``llama3`` and ``kv_cache.llama3`` modules: equal to `transformers`, to the zoo and to the notebook.

Every model here is a shrunk configuration with random fp32 weights. The references are
``transformers.LlamaForCausalLM`` (eager attention) and the zoo's llama family, both loaded through the
Hugging Face key names that ``load_weights_into_llama`` reads.
"""

from __future__ import annotations

import inspect
import math
import sys
from pathlib import Path

import pytest
import torch
from notebook_defs import load_notebook_definitions
from safetensors.torch import load_file

from llms_from_scratch import ch04, llama3
from llms_from_scratch.kv_cache import generate as kv_generate
from llms_from_scratch.kv_cache import llama3 as kv_llama3
from llms_from_scratch.kv_cache.utils import KVCache
from llms_from_scratch.models import build_model, get_config, save_hf_checkpoint
from llms_from_scratch.nn import RopeScaling

transformers = pytest.importorskip("transformers")
from zoo_reference import randomize_  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

NOTEBOOK = Path(__file__).resolve().parents[2] / "ch05/07_gpt_to_llama/gpt-to-llama.ipynb"
PROMPT = [[5, 17, 300, 42, 8, 99, 123, 7, 250, 3, 11], [401, 2, 77, 9, 8, 7, 6, 5, 4, 3, 2]]


def tiny_config(**overrides) -> dict:
    """LLAMA32_CONFIG_1B shrunk to two layers of width 64, in float32; the llama3 RoPE scaling is kept."""
    cfg = {**llama3.LLAMA32_CONFIG_1B, "vocab_size": 512, "context_length": 256, "emb_dim": 64, "n_heads": 4,
           "n_kv_groups": 2, "n_layers": 2, "hidden_dim": 96, "dtype": torch.float32,
           # a short original context puts the 8 frequency pairs of a 16-wide head into all three bands
           "rope_freq": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_context_length": 64}}
    return {**cfg, **overrides}


def hf_llama(cfg: dict, tied: bool, seed: int = 0):
    """A random ``LlamaForCausalLM`` with the architecture of the book config ``cfg``."""
    rope = {"rope_type": "default", "rope_theta": cfg["rope_base"]}
    if cfg["rope_freq"] is not None:
        f = cfg["rope_freq"]
        rope.update(rope_type="llama3", factor=f["factor"], low_freq_factor=f["low_freq_factor"],
                    high_freq_factor=f["high_freq_factor"], original_max_position_embeddings=f["original_context_length"])
    hf_cfg = transformers.LlamaConfig(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["emb_dim"], intermediate_size=cfg["hidden_dim"],
        num_hidden_layers=cfg["n_layers"], num_attention_heads=cfg["n_heads"], num_key_value_heads=cfg["n_kv_groups"],
        head_dim=cfg["emb_dim"] // cfg["n_heads"], max_position_embeddings=cfg["context_length"], rms_norm_eps=1e-5,
        tie_word_embeddings=tied, rope_parameters=rope,
    )
    model = transformers.LlamaForCausalLM._from_config(hf_cfg, attn_implementation="eager", dtype=torch.float32)
    return randomize_(model, seed).eval()


def hf_params(model, tied: bool) -> dict[str, torch.Tensor]:
    """The model's tensors under their checkpoint names; a tied checkpoint has no ``lm_head.weight``."""
    params = dict(model.state_dict())
    if tied:
        del params["lm_head.weight"]
    return params


def loaded(model_class, cfg: dict, params: dict) -> torch.nn.Module:
    model = model_class(cfg)
    llama3.load_weights_into_llama(model, cfg, params)
    return model.eval()


HF_CASES = {
    "llama3.2-like: tied head, llama3 RoPE scaling": (tiny_config(), True),
    "llama3-8b-like: untied head, no scaling, one kv head": (
        tiny_config(rope_freq=None, rope_base=10_000.0, n_kv_groups=1), False),
    "smollm2-like: tied head, rope base 100000, no grouping": (
        tiny_config(rope_freq=None, rope_base=100_000.0, n_kv_groups=4), True),
}


@pytest.fixture(scope="module", params=sorted(HF_CASES))
def hf_case(request):
    cfg, tied = HF_CASES[request.param]
    ref = hf_llama(cfg, tied)
    return cfg, tied, ref, hf_params(ref, tied)


@pytest.mark.parametrize("model_class", [llama3.Llama3Model, llama3.Llama3ModelFast, kv_llama3.Llama3Model])
def test_logits_equal_transformers(hf_case, model_class):
    cfg, tied, ref, params = hf_case
    ours = loaded(model_class, cfg, params)
    assert (ours.out_head.weight is ours.tok_emb.weight) == tied
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        expected = ref(ids).logits
        got = ours(ids)
    assert expected.abs().max() > 1.0  # the comparison is meaningful: logits spread over several units
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_greedy_tokens_equal_transformers(hf_case):
    cfg, tied, ref, params = hf_case
    ours = loaded(llama3.Llama3Model, cfg, params)
    ids = torch.tensor(PROMPT[:1])
    ref.generation_config.eos_token_id = None  # a random model must not stop early
    ref.generation_config.pad_token_id = 0
    expected = ref.generate(ids, max_new_tokens=8, do_sample=False)
    got = ch04.generate_text_simple(ours, ids, 8, context_size=cfg["context_length"])
    assert got.tolist() == expected.tolist()


def _rope_bands(cfg: dict) -> set[str]:
    """Which of llama3 scaling's three bands the frequencies of ``cfg`` fall into."""
    head_dim, f = cfg["emb_dim"] // cfg["n_heads"], cfg["rope_freq"]
    wavelen = 2 * math.pi * cfg["rope_base"] ** (torch.arange(0, head_dim, 2) / head_dim)
    long, short = f["original_context_length"] / f["low_freq_factor"], f["original_context_length"] / f["high_freq_factor"]
    return {"scaled" if w > long else "kept" if w < short else "blended" for w in wavelen.tolist()}


@pytest.mark.parametrize("scaled", [True, False])
def test_rope_equals_transformers(scaled):
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    cfg = tiny_config(context_length=1024) if scaled else tiny_config(context_length=1024, rope_freq=None)
    if scaled:
        assert _rope_bands(cfg) == {"scaled", "kept", "blended"}
    head_dim = cfg["emb_dim"] // cfg["n_heads"]
    cos, sin = llama3.compute_rope_params(head_dim, cfg["rope_base"], cfg["context_length"], cfg["rope_freq"])
    rotary = LlamaRotaryEmbedding(config=hf_llama(cfg, tied=False).config)
    positions = torch.arange(cfg["context_length"])[None]
    torch.manual_seed(1)
    queries, keys = torch.randn(2, 4, cfg["context_length"], head_dim), torch.randn(2, 2, cfg["context_length"], head_dim)
    ref_cos, ref_sin = rotary(queries, positions)
    torch.testing.assert_close(cos, ref_cos[0])
    torch.testing.assert_close(sin, ref_sin[0])
    # apply_rotary_pos_emb rotates both with the same tables; the head counts may differ (GQA)
    ref_queries, ref_keys = apply_rotary_pos_emb(queries, keys, ref_cos, ref_sin)
    torch.testing.assert_close(llama3.apply_rope(queries, cos, sin), ref_queries)
    torch.testing.assert_close(llama3.apply_rope(keys, cos, sin), ref_keys)
    # an offset rotates as if the tokens sat further along
    torch.testing.assert_close(llama3.apply_rope(queries[:, :, 7:9], cos, sin, offset=7), ref_queries[:, :, 7:9])


def test_rope_scaling_changes_only_long_wavelengths():
    cfg = tiny_config()
    _, plain_sin = llama3.compute_rope_params(16, cfg["rope_base"], 8)
    _, scaled_sin = llama3.compute_rope_params(16, cfg["rope_base"], 8, cfg["rope_freq"])
    # pair 0 turns fastest (wavelength 2*pi) and stays; the last pair's wavelength is far above 64, so it turns
    # 32 times slower (its angles are tiny, where sin(angle) is the angle)
    torch.testing.assert_close(plain_sin[:, 0], scaled_sin[:, 0])
    torch.testing.assert_close(plain_sin[1:, 7] / scaled_sin[1:, 7], torch.full((7,), 32.0))
    with pytest.raises(ValueError, match="even"):
        llama3.compute_rope_params(15)


def test_rescale_theta_scales_the_base_with_the_context():
    # Llama 3.2's base for 131,072 tokens, brought to Llama 3's 8,192 and back
    assert llama3.rescale_theta(500_000.0, 131_072, 8192) == 31_250.0
    assert llama3.rescale_theta(31_250.0, context_length_old=8192, context_length_new=131_072) == 500_000.0
    # the slowest pair then makes nearly the same fraction of a turn over the shorter context
    old_angle = 131_071 * llama3.rescale_theta(500_000.0, 1, 1) ** (-62 / 64)
    new_angle = 8191 * llama3.rescale_theta(500_000.0, 131_072, 8192) ** (-62 / 64)
    assert 0.9 < new_angle / old_angle < 1.0


ZOO_CASES = {
    "llama3.2-1b": dict(head_dim=16, rope_scaling=RopeScaling("llama3", factor=32.0, original_context_length=64)),
    "llama3.1-8b": dict(rope_scaling=RopeScaling("llama3", factor=8.0, original_context_length=64)),
    "smollm2-135m-instruct": dict(),
}


def book_config_of(zoo_cfg) -> dict:
    """The book's dict config for a zoo ``ModelConfig`` of the llama family."""
    s = zoo_cfg.rope_scaling
    assert zoo_cfg.resolved_head_dim * zoo_cfg.n_heads == zoo_cfg.emb_dim  # the book derives head_dim from emb_dim
    return {
        "vocab_size": zoo_cfg.vocab_size, "context_length": zoo_cfg.context_length, "emb_dim": zoo_cfg.emb_dim,
        "n_heads": zoo_cfg.n_heads, "n_layers": zoo_cfg.n_layers, "hidden_dim": zoo_cfg.hidden_dim,
        "n_kv_groups": zoo_cfg.resolved_kv_groups, "rope_base": zoo_cfg.rope_base, "dtype": torch.float32,
        "rope_freq": None if s is None else {
            "factor": s.factor, "low_freq_factor": s.low_freq_factor, "high_freq_factor": s.high_freq_factor,
            "original_context_length": s.original_context_length},
    }


@pytest.mark.parametrize("name", sorted(ZOO_CASES))
def test_logits_equal_the_zoo(name, tmp_path):
    zoo_cfg = get_config(name, vocab_size=512, emb_dim=64, n_layers=2, n_heads=4, n_kv_groups=2, hidden_dim=96,
                         context_length=256, **ZOO_CASES[name])
    zoo = randomize_(build_model(zoo_cfg), seed=3).eval()
    # the zoo's export writes Hugging Face names, the same file a reader downloads from the hub
    params = load_file(save_hf_checkpoint(zoo, tmp_path) / "model.safetensors")
    assert ("lm_head.weight" not in params) == zoo_cfg.tie_embeddings
    cfg = book_config_of(zoo_cfg)
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        expected = zoo(ids)
        for model_class in (llama3.Llama3Model, llama3.Llama3ModelFast):
            torch.testing.assert_close(loaded(model_class, cfg, params)(ids), expected, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def cached_pair():
    cfg, tied = HF_CASES["llama3.2-like: tied head, llama3 RoPE scaling"]
    params = hf_params(hf_llama(cfg, tied, seed=5), tied)
    return cfg, loaded(llama3.Llama3Model, cfg, params), loaded(kv_llama3.Llama3Model, cfg, params)


def test_cached_generation_equals_uncached(cached_pair):
    cfg, plain, cached = cached_pair
    ids = torch.tensor(PROMPT)
    with_cache = kv_generate.generate_text_simple(cached, ids, 12, use_cache=True)
    without_cache = kv_generate.generate_text_simple(cached, ids, 12, use_cache=False)
    reference = ch04.generate_text_simple(plain, ids, 12, context_size=cfg["context_length"])
    assert with_cache.tolist() == without_cache.tolist() == reference.tolist()
    streamed = list(kv_generate.generate_text_simple_stream(cached, ids, 12))
    assert torch.cat(streamed, dim=1).tolist() == with_cache[:, ids.shape[1]:].tolist()


def test_cached_logits_equal_uncached_step_by_step(cached_pair):
    _, plain, cached = cached_pair
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        full = plain(ids)
        cache = KVCache(n_layers=cached.cfg["n_layers"])
        cached.reset_kv_cache()
        steps = [cached(ids[:, :4], cache=cache)]  # a prompt of 4 tokens, then one token at a time
        steps += [cached(ids[:, t:t + 1], cache=cache) for t in range(4, ids.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cached.current_pos == ids.shape[1]
    keys, values = cache.get(0)
    assert keys.shape == values.shape == (2, cached.cfg["n_kv_groups"], ids.shape[1], 16)  # kv heads, not query heads
    # a fresh cache starts at position 0 even when reset_kv_cache was not called
    with torch.no_grad():
        torch.testing.assert_close(cached(ids, cache=KVCache(cached.cfg["n_layers"])), full, atol=1e-5, rtol=1e-5)
    cached.reset_kv_cache()
    assert cached.current_pos == 0


def test_cache_past_the_context_length_is_a_clear_error():
    cfg = tiny_config(context_length=8)
    model = kv_llama3.Llama3Model(cfg).eval()
    cache = KVCache(cfg["n_layers"])
    with torch.no_grad():
        model(torch.zeros(1, 6, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="Sequence length 9 exceeds the context length of 8 tokens; call reset"):
            model(torch.zeros(1, 3, dtype=torch.long), cache=cache)
    for model_class in (llama3.Llama3Model, llama3.Llama3ModelFast):
        with pytest.raises(ValueError, match="context_length is 8; keep only the last 8 tokens"):
            model_class(cfg)(torch.zeros(1, 9, dtype=torch.long))
        with pytest.raises(ValueError, match="batch dimension"):
            model_class(cfg)(torch.zeros(9, dtype=torch.long))


def test_bfloat16_model_runs_in_bfloat16_and_stays_close():
    torch.manual_seed(0)
    cfg32 = tiny_config()
    model32 = llama3.Llama3Model(cfg32).eval()
    model16 = llama3.Llama3Model({**cfg32, "dtype": torch.bfloat16}).eval()
    model16.load_state_dict(model32.state_dict())
    assert model16.cos.dtype == torch.float32  # the RoPE tables stay float32 whatever the weights
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        out16, out32 = model16(ids), model32(ids)
    assert out16.dtype == torch.bfloat16
    assert (out16.float() - out32).abs().max() < 0.05 * out32.abs().max()


def test_loader_rejects_checkpoints_that_do_not_fit():
    cfg, tied = HF_CASES["llama3-8b-like: untied head, no scaling, one kv head"]
    params = hf_params(hf_llama(cfg, tied), tied)
    model = llama3.Llama3Model(cfg)
    with pytest.raises(ValueError, match="n_layers=3"):
        llama3.load_weights_into_llama(model, {**cfg, "n_layers": 3}, params)
    with pytest.raises(ValueError, match=r"Llama: unexpected \['model.layers.0.mlp.extra.weight'\]; check"):
        llama3.load_weights_into_llama(model, cfg, {**params, "model.layers.0.mlp.extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="missing .*model.norm.weight"):
        llama3.load_weights_into_llama(model, cfg, {k: v for k, v in params.items() if k != "model.norm.weight"})
    bad = {**params, "model.layers.1.mlp.up_proj.weight": torch.zeros(3, 3)}
    with pytest.raises(ValueError, match=r"model.layers.1.mlp.up_proj.weight.*\(96, 64\).*\(3, 3\)"):
        llama3.load_weights_into_llama(model, cfg, bad)
    with pytest.raises(ValueError, match="shape mismatch for unknown"):
        llama3.assign(torch.zeros(2), torch.zeros(3))


def test_loading_an_untied_checkpoint_unties_a_tied_model():
    cfg = HF_CASES["llama3.2-like: tied head, llama3 RoPE scaling"][0]
    tied_params = hf_params(hf_llama(cfg, tied=True, seed=1), tied=True)
    untied_params = hf_params(hf_llama(cfg, tied=False, seed=2), tied=False)
    model = loaded(llama3.Llama3Model, cfg, tied_params)
    assert model.out_head.weight is model.tok_emb.weight
    llama3.load_weights_into_llama(model, cfg, untied_params)
    assert model.out_head.weight is not model.tok_emb.weight
    assert torch.equal(model.tok_emb.weight, untied_params["model.embed_tokens.weight"])
    assert torch.equal(model.out_head.weight, untied_params["lm_head.weight"])


# ---------------------------------------------------------------------------------------------------------------
# The API: names, signatures, configs
# ---------------------------------------------------------------------------------------------------------------

# (callable, parameter names in order, defaults) as issue 13 and the book's package give them
SIGNATURES = [
    ("compute_rope_params", ["head_dim", "theta_base", "context_length", "freq_config", "dtype"],
     {"theta_base": 10_000, "context_length": 4096, "freq_config": None, "dtype": torch.float32}),
    ("rescale_theta", ["theta_old", "context_length_old", "context_length_new"], {}),
    ("apply_rope", ["x", "cos", "sin", "offset"], {"offset": 0}),
    ("Llama3Model", ["cfg"], {}),
    ("Llama3ModelFast", ["cfg"], {}),
    ("TransformerBlock", ["cfg"], {}),
    ("TransformerBlockFast", ["cfg"], {}),
    ("FeedForward", ["cfg"], {}),
    ("GroupedQueryAttention", ["d_in", "d_out", "num_heads", "num_kv_groups", "dtype"], {"dtype": None}),
    ("GroupedQueryAttentionFast", ["d_in", "d_out", "num_heads", "num_kv_groups", "dtype"], {"dtype": None}),
    ("Llama3Tokenizer", ["model_path"], {}),
    ("ChatFormat", ["tokenizer", "default_system"], {"default_system": "You are a helpful assistant."}),
    ("clean_text", ["text", "header_end"], {"header_end": "assistant<|end_header_id|>\n\n"}),
    ("assign", ["left", "right", "tensor_name"], {"tensor_name": "unknown"}),
    ("load_weights_into_llama", ["model", "param_config", "params"], {}),
    ("Llama3Tokenizer.encode", ["text", "bos", "eos", "allowed_special", "disallowed_special"],
     {"bos": False, "eos": False, "allowed_special": set(), "disallowed_special": ()}),
    ("Llama3Tokenizer.decode", ["tokens"], {}),
    ("ChatFormat.encode", ["user_message", "system_message", "allowed_special"],
     {"system_message": None, "allowed_special": None}),
    ("ChatFormat.decode", ["token_ids"], {}),
]
# the cached model's methods, as kv_cache.generate calls them
KV_SIGNATURES = [
    ("Llama3Model.forward", ["in_idx", "cache"], {"cache": None}),
    ("Llama3Model.reset_kv_cache", [], {}),
    ("TransformerBlock.forward", ["x", "mask", "cos", "sin", "start_pos", "cache"], {"start_pos": 0, "cache": None}),
    ("GroupedQueryAttention.forward", ["x", "mask", "cos", "sin", "start_pos", "cache"],
     {"start_pos": 0, "cache": None}),
]


def _parameters(module, dotted: str) -> dict[str, inspect.Parameter]:
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    params = dict(inspect.signature(obj).parameters)
    params.pop("self", None)
    return params


@pytest.mark.parametrize("module", [llama3, kv_llama3], ids=["llama3", "kv_cache.llama3"])
def test_every_name_and_signature(module):
    for name in llama3.__all__:
        assert hasattr(module, name), f"{module.__name__} lacks {name}"
    for dotted, names, defaults in SIGNATURES + (KV_SIGNATURES if module is kv_llama3 else []):
        params = _parameters(module, dotted)
        assert list(params) == names, dotted
        for key, value in defaults.items():
            assert params[key].default == value, f"{dotted}: default of {key}"
        assert {k for k, p in params.items() if p.default is not inspect.Parameter.empty} == set(defaults), dotted
    # one state dict fits every variant
    cfg = tiny_config()
    names = set(llama3.Llama3Model(cfg).state_dict())
    assert names == set(module.Llama3ModelFast(cfg).state_dict()) == set(module.Llama3Model(cfg).state_dict())


def test_configs_are_the_llama32_models():
    expected_keys = {"vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "hidden_dim", "n_kv_groups",
                     "rope_base", "dtype", "rope_freq"}
    for book, zoo_name, layers, width, heads in [(llama3.LLAMA32_CONFIG_1B, "llama3.2-1b", 16, 2048, 32),
                                                  (llama3.LLAMA32_CONFIG_3B, "llama3.2-3b", 28, 3072, 24)]:
        assert set(book) == expected_keys
        assert (book["n_layers"], book["emb_dim"], book["n_heads"]) == (layers, width, heads)
        assert book["dtype"] == torch.bfloat16
        zoo_cfg = get_config(zoo_name)
        assert book_config_of(zoo_cfg) == {**book, "dtype": torch.float32}  # the zoo's config, independently
    assert llama3.LLAMA32_CONFIG_3B["rope_freq"] is not llama3.LLAMA32_CONFIG_1B["rope_freq"]
    with torch.device("meta"):
        model = llama3.Llama3Model(llama3.LLAMA32_CONFIG_1B)
    model.out_head.weight = model.tok_emb.weight  # Llama 3.2 ties the head, as the loader does
    assert sum(p.numel() for p in model.parameters()) == 1_235_814_400


# ---------------------------------------------------------------------------------------------------------------
# The notebook defines exactly this code
# ---------------------------------------------------------------------------------------------------------------


def _own_names(module) -> dict[str, object]:
    """Functions and classes a module defines itself (not imports), and its upper-case constants."""
    out = {}
    for name, value in vars(module).items():
        if inspect.isfunction(value) or inspect.isclass(value):
            # an imported object's module is a loaded module other than this one; the notebook's is not loaded
            if sys.modules.get(value.__module__, module) is module:
                out[name] = value
        elif name.lstrip("_").isupper() and not name.startswith("__"):
            out[name] = value
    return out


def _shape_of(function) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.fixture(scope="module")
def notebook():
    return load_notebook_definitions(NOTEBOOK, "gpt_to_llama_notebook")


def test_notebook_defines_exactly_the_package_code(notebook):
    ours, theirs = _own_names(llama3), _own_names(notebook)
    assert sorted(theirs) == sorted(ours)
    for name, value in ours.items():
        if not (inspect.isfunction(value) or inspect.isclass(value)):
            assert theirs[name] == value, name
        elif inspect.isfunction(value):  # names, kinds and defaults; annotations are strings in the package only
            assert _shape_of(theirs[name]) == _shape_of(value), name
        else:
            methods = {attr: member for attr, member in vars(value).items() if inspect.isfunction(member)}
            assert sorted(methods) == sorted(a for a, m in vars(theirs[name]).items() if inspect.isfunction(m)), name
            for attr, member in methods.items():
                assert _shape_of(getattr(theirs[name], attr)) == _shape_of(member), f"{name}.{attr}"


def test_notebook_models_equal_the_package(notebook):
    cfg, tied = HF_CASES["llama3.2-like: tied head, llama3 RoPE scaling"]
    params = hf_params(hf_llama(cfg, tied, seed=7), tied)
    ids = torch.tensor(PROMPT)
    with torch.no_grad():
        for name in ("Llama3Model", "Llama3ModelFast"):
            ours = loaded(getattr(llama3, name), cfg, params)
            theirs = getattr(notebook, name)(cfg)
            notebook.load_weights_into_llama(theirs, cfg, params)
            assert theirs.out_head.weight is theirs.tok_emb.weight
            assert torch.equal(theirs.eval()(ids), ours(ids)), name
    for a, b in zip(notebook.compute_rope_params(16, 500_000.0, 64, cfg["rope_freq"]),
                    llama3.compute_rope_params(16, 500_000.0, 64, cfg["rope_freq"])):
        assert torch.equal(a, b)
    assert notebook.clean_text("x assistant<|end_header_id|>\n\n Paris. ") == "Paris."
