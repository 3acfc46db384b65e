"""The book's ``llms_from_scratch.qwen3``: equal to `transformers` and to the zoo on the same random weights.

Each case is a registered zoo config shrunk to two layers (tied head with head_dim 128 > emb_dim / n_heads, untied
head, and the 30B-A3B mixture of experts). A random fp32 `transformers` model is saved with ``save_pretrained``;
the book's model reads the saved tensors (the hub layout, one tensor per expert) through ``load_weights_into_qwen``,
the zoo's reads the folder with ``load_hf_checkpoint``. Then the API: names, parameters, defaults, the loader's
errors, and the Hugging Face download helpers offline (the hub functions replaced by fakes).
"""

from __future__ import annotations

import inspect
import json
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import llms_from_scratch.qwen3 as book
from llms_from_scratch.ch04 import generate_text_simple
from llms_from_scratch.data import AssetUnavailableError
from llms_from_scratch.models import build_model, get_config, load_hf_checkpoint
from llms_from_scratch.nn import MoEConfig

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(vocab_size=512, emb_dim=64, n_layers=2, hidden_dim=96, context_length=256, n_heads=4, n_kv_groups=2)
CASES = {
    "qwen3-0.6b": get_config("qwen3-0.6b", **SMALL),  # tied head, head_dim 128 (n_heads * head_dim != emb_dim)
    "qwen3-8b": get_config("qwen3-8b", **SMALL, head_dim=16),  # untied head
    "qwen3-30b-a3b": get_config("qwen3-30b-a3b", **SMALL, head_dim=16,
                                moe=MoEConfig(n_experts=8, n_experts_per_tok=3, hidden_dim=32)),
}
PROMPT = [5, 17, 300, 42, 8, 99, 123, 7, 250, 3, 11, 9, 8, 7, 6, 5, 4, 3]


def book_config(cfg) -> dict:
    """The book's config dict for a zoo ModelConfig, in float32."""
    out = {"vocab_size": cfg.vocab_size, "context_length": cfg.context_length, "emb_dim": cfg.emb_dim,
           "n_heads": cfg.n_heads, "n_layers": cfg.n_layers, "hidden_dim": cfg.hidden_dim,
           "head_dim": cfg.resolved_head_dim, "qk_norm": cfg.qk_norm, "n_kv_groups": cfg.n_kv_groups,
           "rope_base": cfg.rope_base, "dtype": torch.float32}
    if cfg.moe is not None:
        out.update(num_experts=cfg.moe.n_experts, num_experts_per_tok=cfg.moe.n_experts_per_tok,
                   moe_intermediate_size=cfg.moe.hidden_dim)
    return out


def hf_model(cfg: dict, tie: bool) -> torch.nn.Module:
    """A random fp32 `transformers` Qwen3 (or Qwen3-MoE) model for the book's config ``cfg``, eager attention.

    Norm scales are near 1 (not exactly 1, so a swapped norm shows) and weights large enough that the logits
    spread over several units.
    """
    common = dict(vocab_size=cfg["vocab_size"], hidden_size=cfg["emb_dim"], num_hidden_layers=cfg["n_layers"],
                  num_attention_heads=cfg["n_heads"], num_key_value_heads=cfg["n_kv_groups"], head_dim=cfg["head_dim"],
                  max_position_embeddings=cfg["context_length"], rope_theta=cfg["rope_base"], rms_norm_eps=1e-6,
                  tie_word_embeddings=tie, intermediate_size=cfg["hidden_dim"])
    if "num_experts" in cfg:
        hcfg = transformers.Qwen3MoeConfig(**common, num_experts=cfg["num_experts"], norm_topk_prob=True,
                                           num_experts_per_tok=cfg["num_experts_per_tok"],
                                           moe_intermediate_size=cfg["moe_intermediate_size"])
        model = transformers.Qwen3MoeForCausalLM._from_config(hcfg, attn_implementation="eager",
                                                              experts_implementation="eager")
    else:
        model = transformers.Qwen3ForCausalLM._from_config(transformers.Qwen3Config(**common),
                                                           attn_implementation="eager")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1.0 + 0.1 * noise if "norm" in name else 0.15 * noise)
    model.generation_config.eos_token_id = None  # a random model: never stop early
    model.generation_config.pad_token_id = 0
    return model.float().eval()


@pytest.fixture(scope="module", params=sorted(CASES))
def trio(request, tmp_path_factory):
    """(name, transformers model, the book's model, the zoo's model), all on the same weights."""
    cfg = book_config(CASES[request.param])
    ref = hf_model(cfg, tie=CASES[request.param].tie_embeddings)
    folder = tmp_path_factory.mktemp(request.param)
    ref.save_pretrained(folder)
    params = load_file(folder / "model.safetensors")
    torch.manual_seed(0)
    ours = book.Qwen3Model(cfg)
    book.load_weights_into_qwen(ours, cfg, params)
    zoo = load_hf_checkpoint(folder)
    assert zoo.cfg == CASES[request.param]  # the zoo read back the shrunk registered config
    return request.param, ref, ours.eval(), zoo


def test_logits_equal_transformers_and_the_zoo(trio):
    name, ref, ours, zoo = trio
    ids = torch.tensor([PROMPT, PROMPT[::-1]])
    with torch.no_grad():
        expected, got, zoo_logits = ref(ids).logits, ours(ids), zoo(ids)
    assert expected.abs().max() > 1.0  # the comparison means something: logits spread over several units
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, zoo_logits, atol=1e-5, rtol=1e-5)
    if name == "qwen3-30b-a3b":
        assert isinstance(ours.trf_blocks[0].ff, book.MoEFeedForward)


def test_greedy_tokens_equal_transformers(trio):
    _, ref, ours, _ = trio
    ids = torch.tensor([PROMPT[:7]])
    expected = ref.generate(ids, max_new_tokens=8, do_sample=False)
    assert generate_text_simple(ours, ids, 8, context_size=256).tolist() == expected.tolist()


def test_rope_equals_transformers():
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RotaryEmbedding, apply_rotary_pos_emb

    head_dim, context, theta = 16, 1024, 1_000_000
    cos, sin = book.compute_rope_params(head_dim=head_dim, theta_base=theta, context_length=context)
    config = transformers.Qwen3Config(head_dim=head_dim, hidden_size=64, num_attention_heads=4, rope_theta=theta,
                                      max_position_embeddings=context)
    g = torch.Generator().manual_seed(0)
    queries, keys = torch.randn(2, 4, context, head_dim, generator=g), torch.randn(2, 2, context, head_dim, generator=g)
    positions = torch.arange(context)[None]
    ref_cos, ref_sin = Qwen3RotaryEmbedding(config)(queries, positions)
    torch.testing.assert_close(cos, ref_cos[0])
    torch.testing.assert_close(sin, ref_sin[0])
    ref_q, _ = apply_rotary_pos_emb(queries, queries, ref_cos, ref_sin)
    _, ref_k = apply_rotary_pos_emb(keys, keys, ref_cos, ref_sin)
    torch.testing.assert_close(book.apply_rope(queries, cos, sin), ref_q)
    torch.testing.assert_close(book.apply_rope(keys, cos, sin), ref_k)
    # tables gathered per row (what the batched model passes) rotate like slices of the full table
    rows = torch.tensor([[3, 4, 5], [40, 41, 42]])
    x = keys[:, :, :3]
    gathered = book.apply_rope(x, cos[rows][:, None], sin[rows][:, None])
    torch.testing.assert_close(gathered[1:], book.apply_rope(x[1:], cos[40:], sin[40:]))


def test_rmsnorm_equals_transformers():
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

    g = torch.Generator().manual_seed(0)
    ours, ref = book.RMSNorm(64), Qwen3RMSNorm(64, eps=1e-6)
    with torch.no_grad():
        ours.scale.copy_(1 + 0.1 * torch.randn(64, generator=g))
        ref.weight.copy_(ours.scale)
    x = 3 * torch.randn(2, 5, 64, generator=g)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)
    # bfloat16 in, bfloat16 out, computed in float32 (the reference casts before the scale, so allow one bf16 step)
    out = ours(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref(x.bfloat16()).float(), atol=2e-2, rtol=1e-2)
    shifted = book.RMSNorm(64, bias=True)
    with torch.no_grad():
        shifted.shift.fill_(0.5)
    torch.testing.assert_close(shifted(x), book.RMSNorm(64)(x) + 0.5)


def test_moe_routing_is_a_softmax_over_the_top_k():
    """Each token: softmax over all router scores, keep the k largest, renormalize, weight the experts' outputs."""
    cfg = {"emb_dim": 16, "num_experts": 6, "num_experts_per_tok": 2, "moe_intermediate_size": 8, "dtype": None}
    torch.manual_seed(0)
    moe = book.MoEFeedForward(cfg)
    x = torch.randn(2, 5, 16)
    expected = torch.zeros_like(x)
    for b in range(2):
        for t in range(5):
            probs = torch.softmax(moe.gate(x[b, t]), dim=-1)
            top = probs.topk(2)
            for p, e in zip(top.values / top.values.sum(), top.indices.tolist()):
                swiglu = moe.fc3[e](torch.nn.functional.silu(moe.fc1[e](x[b, t])) * moe.fc2[e](x[b, t]))
                expected[b, t] += p * swiglu
    with torch.no_grad():
        torch.testing.assert_close(moe(x), expected, atol=1e-6, rtol=1e-5)


def test_configs_match_the_zoo_registry():
    """Same architecture numbers as the zoo's registered configs; same parameter count (a tied head counts once)."""
    pairs = [("qwen3-0.6b", book.QWEN_CONFIG_06_B), ("qwen3-1.7b", book.QWEN3_CONFIG_1_7B),
             ("qwen3-4b", book.QWEN3_CONFIG_4B), ("qwen3-8b", book.QWEN3_CONFIG_8B),
             ("qwen3-14b", book.QWEN3_CONFIG_14B), ("qwen3-32b", book.QWEN3_CONFIG_32B),
             ("qwen3-30b-a3b", book.QWEN3_CONFIG_30B_A3B)]
    for name, ours in pairs:
        zoo = get_config(name)
        for key in ("vocab_size", "emb_dim", "n_heads", "n_layers", "head_dim", "n_kv_groups"):
            assert ours[key] == getattr(zoo, key), (name, key)
        assert ours["qk_norm"] and ours["dtype"] == torch.bfloat16
        if zoo.moe is None:
            assert (ours["hidden_dim"], ours["context_length"], ours["rope_base"]) == \
                (zoo.hidden_dim, zoo.context_length, zoo.rope_base), name
        else:
            assert (ours["num_experts"], ours["num_experts_per_tok"], ours["moe_intermediate_size"]) == \
                (zoo.moe.n_experts, zoo.moe.n_experts_per_tok, zoo.moe.hidden_dim)
            # the book's 30B-A3B numbers are those of the 2507 update: 256k context, RoPE base 10 million
            assert (ours["context_length"], ours["rope_base"]) == (262_144, 10_000_000.0)
        with torch.device("meta"):
            n_book = sum(p.numel() for p in book.Qwen3Model(ours).parameters())
            n_zoo = sum(p.numel() for p in build_model(zoo).parameters())
        head = ours["vocab_size"] * ours["emb_dim"] if zoo.tie_embeddings else 0
        assert n_book - head == n_zoo, name
    assert book.QWEN_CONFIG_06_B["hidden_dim"] == 3072 and book.QWEN3_CONFIG_32B["n_heads"] == 64


# ------------------------------------------------------------------------------------------------------- loader


TINY = {"vocab_size": 50, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2, "hidden_dim": 24,
        "head_dim": 8, "qk_norm": True, "n_kv_groups": 1, "rope_base": 10_000.0, "dtype": torch.float32}


def _checkpoint(cfg: dict) -> dict[str, torch.Tensor]:
    """A Hugging Face state dict for ``cfg``, from a random transformers model."""
    hcfg = transformers.Qwen3Config(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["emb_dim"], intermediate_size=cfg["hidden_dim"],
        num_hidden_layers=cfg["n_layers"], num_attention_heads=cfg["n_heads"], head_dim=cfg["head_dim"],
        num_key_value_heads=cfg["n_kv_groups"], max_position_embeddings=cfg["context_length"], tie_word_embeddings=False)
    torch.manual_seed(1)
    return {k: v.clone() for k, v in transformers.Qwen3ForCausalLM(hcfg).state_dict().items()}


def test_tied_checkpoint_copies_the_embedding_into_the_head():
    params = _checkpoint(TINY)
    del params["lm_head.weight"]
    params["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(4)  # older checkpoints: ignored
    model = book.Qwen3Model(TINY)
    book.load_weights_into_qwen(model, TINY, params)
    assert torch.equal(model.out_head.weight, params["model.embed_tokens.weight"])
    assert model.out_head.weight.data_ptr() != model.tok_emb.weight.data_ptr()
    assert torch.equal(model.trf_blocks[1].att.k_norm.scale, params["model.layers.1.self_attn.k_norm.weight"])


def test_loader_converts_to_the_model_dtype():
    model = book.Qwen3Model({**TINY, "dtype": torch.bfloat16})
    book.load_weights_into_qwen(model, TINY, _checkpoint(TINY))
    assert model.tok_emb.weight.dtype == torch.bfloat16
    assert model.final_norm.scale.dtype == torch.float32  # the norms keep float32, as the model built them


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.pop("model.layers.1.mlp.up_proj.weight"), ["missing", "model.layers.1.mlp.up_proj.weight"]),
    (lambda p: p.update({"model.layers.2.mlp.up_proj.weight": torch.zeros(1)}),
     ["not in the model", "model.layers.2.mlp.up_proj.weight"]),
    (lambda p: p.update({"model.norm.weight": torch.ones(17)}), ["shape mismatch", "model.norm.weight (17,)"]),
])
def test_loader_names_what_does_not_fit_and_copies_nothing(damage, words):
    params = _checkpoint(TINY)
    damage(params)
    model = book.Qwen3Model(TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as err:
        book.load_weights_into_qwen(model, TINY, params)
    message = str(err.value)
    assert "\n" not in message and "config of this checkpoint" in message
    assert all(w in message for w in words), message
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_loader_refuses_a_config_with_other_layers():
    with pytest.raises(ValueError, match="param_config has 3 layers but the model has 2"):
        book.load_weights_into_qwen(book.Qwen3Model(TINY), {**TINY, "n_layers": 3}, _checkpoint(TINY))


def test_a_moe_checkpoint_does_not_load_into_a_dense_model():
    moe = {**TINY, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8}
    params = {f"model.layers.{i}.mlp.experts.{e}.{p}.weight": t for i in range(2) for e in range(4)
              for p, t in (("gate_proj", torch.zeros(8, 16)), ("up_proj", torch.zeros(8, 16)),
                           ("down_proj", torch.zeros(16, 8)))}
    params.update({k: v for k, v in _checkpoint(TINY).items() if ".mlp." not in k})
    params.update({f"model.layers.{i}.mlp.gate.weight": torch.zeros(4, 16) for i in range(2)})
    book.load_weights_into_qwen(book.Qwen3Model(moe), moe, params)  # fits the MoE model
    with pytest.raises(ValueError, match="missing: model.layers.0.mlp.gate_proj.weight"):
        book.load_weights_into_qwen(book.Qwen3Model(TINY), TINY, params)


def test_model_refuses_inputs_longer_than_the_context():
    with pytest.raises(ValueError, match="context_length is 16"):
        book.Qwen3Model(TINY)(torch.zeros(1, 17, dtype=torch.long))


# ---------------------------------------------------------------------------------------------------- the API


def _params(fn) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values() if p.name != "self"]


_EMPTY = inspect.Parameter.empty


def test_names_parameters_and_defaults_are_the_books():
    import llms_from_scratch.kv_cache.qwen3 as cached
    import llms_from_scratch.kv_cache_batched.generate as batched_generate
    import llms_from_scratch.kv_cache_batched.qwen3 as batched
    import llms_from_scratch.kv_cache_batched.utils as batched_utils

    for name in book.__all__:
        assert hasattr(book, name), name
        if name != "Qwen3Model":  # the cached variants import every other piece unchanged
            assert getattr(cached, name) is getattr(book, name), name
            assert getattr(batched, name) is getattr(book, name), name
    assert _params(book.compute_rope_params) == [
        ("head_dim", _EMPTY), ("theta_base", 10_000), ("context_length", 4096), ("dtype", torch.float32)]
    assert _params(book.apply_rope) == [("x", _EMPTY), ("cos", _EMPTY), ("sin", _EMPTY)]
    assert _params(book.RMSNorm) == [("emb_dim", _EMPTY), ("eps", 1e-6), ("bias", False), ("qwen3_compatible", True)]
    assert _params(book.GroupedQueryAttention) == [("d_in", _EMPTY), ("num_heads", _EMPTY), ("num_kv_groups", _EMPTY),
                                                   ("head_dim", None), ("qk_norm", False), ("dtype", None)]
    for cls in (book.FeedForward, book.MoEFeedForward, book.TransformerBlock, book.Qwen3Model):
        assert _params(cls) == [("cfg", _EMPTY)], cls
    assert _params(book.GroupedQueryAttention.forward) == [("x", _EMPTY), ("mask", _EMPTY), ("cos", _EMPTY),
                                                           ("sin", _EMPTY)]
    assert _params(book.load_weights_into_qwen) == [("model", _EMPTY), ("param_config", _EMPTY), ("params", _EMPTY)]
    assert _params(book.Qwen3Tokenizer) == [("tokenizer_file_path", "tokenizer.json"), ("repo_id", None),
                                            ("apply_chat_template", True), ("add_generation_prompt", False),
                                            ("add_thinking", False)]
    assert _params(book.Qwen3Tokenizer.encode) == [("text", _EMPTY), ("chat_wrapped", None)]
    assert _params(book.Qwen3Tokenizer.decode) == [("ids", _EMPTY)]
    assert _params(book.download_from_huggingface) == [("repo_id", _EMPTY), ("filename", _EMPTY),
                                                       ("local_dir", _EMPTY), ("revision", "main")]
    assert _params(book.download_from_huggingface_from_snapshots) == [("repo_id", _EMPTY), ("local_dir", _EMPTY)]

    assert _params(cached.Qwen3Model.forward) == [("in_idx", _EMPTY), ("cache", None)]
    assert _params(cached.Qwen3Model.reset_kv_cache) == []
    assert _params(batched.Qwen3Model.forward) == [("in_idx", _EMPTY), ("cache", None), ("start_pos", None)]
    assert _params(batched.Qwen3Model.reset_kv_cache) == [("batch_size", _EMPTY), ("device", None)]
    assert _params(batched_utils.KVCache) == [("n_layers", _EMPTY), ("batch_size", _EMPTY)]
    for method, expected in (("get", ["layer_idx", "batch_idx"]), ("update", ["layer_idx", "batch_idx", "value"]),
                             ("get_layer", ["layer_idx"]), ("reset", [])):
        assert [n for n, _ in _params(getattr(batched_utils.KVCache, method))] == expected
    # the book's parameters first; attention_mask is an added keyword-only argument
    assert _params(batched_generate.generate_text_simple) == [
        ("model", _EMPTY), ("idx", _EMPTY), ("max_new_tokens", _EMPTY), ("context_size", None), ("use_cache", True),
        ("attention_mask", None)]
    assert inspect.signature(batched_generate.generate_text_simple).parameters["attention_mask"].kind == \
        inspect.Parameter.KEYWORD_ONLY
    assert batched_generate.trim_input_tensor is not None


# ----------------------------------------------------------------------------------------- Hugging Face downloads


@pytest.fixture
def hub(monkeypatch):
    """huggingface_hub with both download functions replaced: offline until a test says otherwise."""
    huggingface_hub = pytest.importorskip("huggingface_hub")

    def offline(*args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    return huggingface_hub


def test_downloads_fail_offline_with_one_line(hub, tmp_path):
    with pytest.raises(AssetUnavailableError) as err:
        book.download_from_huggingface("Qwen/Qwen3-0.6B", "tokenizer.json", str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and "Qwen/Qwen3-0.6B" in message and "OSError" in message
    assert "put the file at" in message
    with pytest.raises(AssetUnavailableError) as err:
        book.download_from_huggingface_from_snapshots("Qwen/Qwen3-0.6B", str(tmp_path))
    assert "\n" not in str(err.value) and "download it yourself" in str(err.value)


def test_downloads_say_how_to_install_huggingface_hub(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes `import huggingface_hub` fail
    for call in (lambda: book.download_from_huggingface("Qwen/Qwen3-0.6B", "tokenizer.json", str(tmp_path)),
                 lambda: book.download_from_huggingface_from_snapshots("Qwen/Qwen3-0.6B", str(tmp_path))):
        with pytest.raises(AssetUnavailableError, match="pip install huggingface_hub"):
            call()


def test_download_returns_the_hub_path_and_reuses_a_local_file(hub, monkeypatch, tmp_path):
    calls = []

    def fake(repo_id, filename, revision, local_dir):
        calls.append((repo_id, filename, revision))
        path = tmp_path / local_dir / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        return str(path)

    monkeypatch.setattr(hub, "hf_hub_download", fake)
    folder = str(tmp_path / "Qwen3-0.6B")
    path = book.download_from_huggingface("Qwen/Qwen3-0.6B", "config.json", folder, revision="abc")
    assert path == str(tmp_path / "Qwen3-0.6B" / "config.json") and calls == [("Qwen/Qwen3-0.6B", "config.json", "abc")]
    monkeypatch.setattr(hub, "hf_hub_download", None)  # a file already there never goes online
    assert book.download_from_huggingface("Qwen/Qwen3-0.6B", "config.json", folder) == path


@pytest.mark.parametrize("sharded", [False, True])
def test_snapshot_download_returns_the_weights(hub, monkeypatch, tmp_path, sharded):
    weights = {"model.embed_tokens.weight": torch.arange(6.0).view(2, 3), "model.norm.weight": torch.ones(3)}
    repo = tmp_path / "snapshot"
    repo.mkdir()
    if sharded:
        save_file({"model.embed_tokens.weight": weights["model.embed_tokens.weight"]}, repo / "a.safetensors")
        save_file({"model.norm.weight": weights["model.norm.weight"]}, repo / "b.safetensors")
        index = {"weight_map": {"model.embed_tokens.weight": "a.safetensors", "model.norm.weight": "b.safetensors"}}
        (repo / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        save_file(weights, repo / "model.safetensors")
    seen = []
    monkeypatch.setattr(hub, "snapshot_download", lambda repo_id, local_dir: seen.append(repo_id) or str(repo))
    got = book.download_from_huggingface_from_snapshots("Qwen/Qwen3-0.6B", str(tmp_path / "x"))
    assert seen == ["Qwen/Qwen3-0.6B"]
    assert got.keys() == weights.keys() and all(torch.equal(got[k], weights[k]) for k in weights)


def test_snapshot_without_weights_is_an_error(hub, monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "snapshot_download", lambda repo_id, local_dir: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="neither model.safetensors nor"):
        book.download_from_huggingface_from_snapshots("Qwen/Qwen3-0.6B", str(tmp_path))
