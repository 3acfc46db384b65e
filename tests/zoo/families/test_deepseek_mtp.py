"""DeepSeek-V3 multi-token prediction: the module against a hand-written statement of its forward, loading
its checkpoint keys, and self-speculative decoding that always equals plain greedy decoding."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from zoo_reference import random_model

from llms_from_scratch.generation import generate
from llms_from_scratch.models import get_config, load_hf_checkpoint, save_hf_checkpoint
from llms_from_scratch.models.mtp import MultiTokenPredictor, generate_self_speculative, load_mtp, mtp_hf_tensors
from llms_from_scratch.nn import MLAConfig, MoEConfig, RopeScaling

CFG = get_config(
    "deepseek-v3", vocab_size=256, emb_dim=32, n_layers=2, hidden_dim=48, context_length=256, n_heads=4,
    head_dim=24, rope_scaling=RopeScaling("yarn", factor=8.0, original_context_length=16, attention_factor=1.0),
    mla=MLAConfig(kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, q_lora_rank=24,
                  mscale_all_dim=1.0),
    moe=MoEConfig(n_experts=4, n_experts_per_tok=2, hidden_dim=16, scoring="sigmoid", n_groups=2, topk_groups=1,
                  routed_scaling=2.5, n_shared_experts=1, correction_bias=True, first_dense_layers=1),
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_and_mtp():
    model = random_model(CFG)
    torch.manual_seed(5)
    mtp = MultiTokenPredictor(CFG, model.tok_emb, model.out_head).eval()
    with torch.no_grad():
        for p in mtp.parameters():
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if p.dim() == 1 else 0.0))
    return model, mtp


def mtp_pairs(model, ids):
    """The MTP inputs for ``ids``: the main model's final-normed states h_i and the next tokens t_{i+1}."""
    captured = {}
    hook = model.final_norm.register_forward_hook(lambda _m, _i, o: captured.__setitem__("h", o))
    try:
        model(ids)
    finally:
        hook.remove()
    return captured["h"][:, :-1], ids[:, 1:]


def rms(x, scale, eps):
    return scale * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def test_mtp_forward_matches_its_documented_formula(model_and_mtp):
    model, mtp = model_and_mtp
    ids = torch.randint(0, CFG.vocab_size, (1, 14), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        h, nxt = mtp_pairs(model, ids)
        eps = CFG.norm_eps
        e = rms(model.tok_emb.weight[nxt], mtp.enorm.scale, eps)
        x = torch.cat([e, rms(h, mtp.hnorm.scale, eps)], dim=-1) @ mtp.eh_proj.weight.T  # [embedding ; hidden]
        x = mtp.block(x, None, mtp.rope(torch.arange(13)[None], x.dtype), None)
        expected = rms(x, mtp.final_norm.scale, eps) @ model.out_head.weight.T
        # the cached module, fed in chunks, gives the same logits
        cache = mtp.new_cache(1, 13)
        got = torch.cat([mtp(h[:, a:b], nxt[:, a:b], cache=cache) for a, b in [(0, 6), (6, 7), (7, 10), (10, 13)]], 1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mtp(h, nxt), expected, atol=1e-5, rtol=1e-5)


class ScriptedDrafts:
    """Stands in for the MTP module: right guesses at some steps and wrong ones at others."""

    def __init__(self, truth: list[int], right: set[int], vocab: int) -> None:
        self.truth, self.right, self.vocab, self.seen, self.step = truth, right, vocab, 0, 0

    def new_cache(self, *_):
        return None

    def __call__(self, pair_h, pair_next, cache=None):
        self.seen += pair_next.shape[1]
        target = self.seen + 1  # pair i predicts token i + 2: the index (prompt + generated) to guess
        guess = self.truth[target] if self.step in self.right else (self.truth[target] + 1) % self.vocab
        self.step += 1
        logits = torch.zeros(1, pair_next.shape[1], self.vocab)
        logits[0, -1, guess] = 1.0
        return logits


def test_self_speculative_decoding_equals_plain_greedy(model_and_mtp):
    model, mtp = model_and_mtp
    prompt = torch.tensor([[5, 17, 100, 42, 8, 99, 123]])
    plain = generate(model, prompt, 20)
    spec, stats = generate_self_speculative(model, mtp, prompt, 20)
    assert spec.tolist() == plain.tolist()
    assert stats["drafted"] > 0
    # whatever the drafts (accepted or rejected), the output is the plain greedy continuation
    drafts = ScriptedDrafts(plain[0].tolist() + [0, 0], right={0, 1, 3, 6, 7}, vocab=CFG.vocab_size)
    spec, stats = generate_self_speculative(model, drafts, prompt, 20)
    assert spec.tolist() == plain.tolist()
    assert stats["accepted"] >= 4 and stats["drafted"] > stats["accepted"]


def test_mtp_layer_loads_from_checkpoint_keys(model_and_mtp, tmp_path):
    model, mtp = model_and_mtp
    save_hf_checkpoint(model, tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    extra = mtp_hf_tensors(mtp)
    assert f"model.layers.{CFG.n_layers}.eh_proj.weight" in extra
    save_file({**tensors, **extra}, str(tmp_path / "model.safetensors"))
    main = load_hf_checkpoint(tmp_path)  # the main model skips the MTP layer
    loaded = load_mtp(tmp_path, main)
    ref_state, got_state = mtp.state_dict(), loaded.state_dict()
    assert ref_state.keys() == got_state.keys()
    assert all(torch.equal(ref_state[k], got_state[k]) for k in ref_state)
    # a head copy that differs from the main model's is refused
    extra[f"model.layers.{CFG.n_layers}.shared_head.head.weight"] += 1
    save_file({**tensors, **extra}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="share the main model's embedding and head"):
        load_mtp(tmp_path, main)


def test_save_hf_checkpoint_exports_the_mtp_layer(model_and_mtp, tmp_path):
    """Saved with the MTP layer in DeepSeek's key layout: we read back the same module (same drafts, same
    self-speculative decoding); `transformers` ignores those keys and computes the main model's logits."""
    transformers = pytest.importorskip("transformers")
    import json

    model, mtp = model_and_mtp
    save_hf_checkpoint(model, tmp_path / "with_mtp", extras=[mtp])
    save_hf_checkpoint(model, tmp_path / "plain")
    names = load_file(tmp_path / "with_mtp" / "model.safetensors").keys()
    layer = f"model.layers.{CFG.n_layers}."
    for key in ("embed_tokens.weight", "enorm.weight", "hnorm.weight", "eh_proj.weight", "shared_head.norm.weight",
                "shared_head.head.weight", "input_layernorm.weight", "self_attn.q_a_proj.weight",
                "self_attn.kv_a_proj_with_mqa.weight", "mlp.gate.weight", "mlp.gate.e_score_correction_bias",
                "mlp.experts.3.down_proj.weight", "mlp.shared_experts.up_proj.weight"):
        assert layer + key in names, key
    assert set(names) - set(load_file(tmp_path / "plain" / "model.safetensors")) == {n for n in names
                                                                                     if n.startswith(layer)}
    config = json.loads((tmp_path / "with_mtp" / "config.json").read_text())
    assert config["num_nextn_predict_layers"] == 1

    main = load_hf_checkpoint(tmp_path / "with_mtp")
    loaded = load_mtp(tmp_path / "with_mtp", main)
    ids = torch.randint(0, CFG.vocab_size, (1, 12), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.equal(loaded(*mtp_pairs(model, ids)), mtp(*mtp_pairs(model, ids)))
    prompt = torch.tensor([[5, 17, 100, 42, 8, 99, 123]])
    (got, got_stats), (want, want_stats) = (generate_self_speculative(main, loaded, prompt, 20),
                                            generate_self_speculative(model, mtp, prompt, 20))
    assert got.tolist() == want.tolist() and got_stats == want_stats and want_stats["drafted"] > 0

    def hf_logits(folder):
        ref = transformers.AutoModelForCausalLM.from_pretrained(
            folder, attn_implementation="eager", experts_implementation="eager", dtype=torch.float32).eval()
        with torch.no_grad():
            return ref(ids).logits

    with_mtp = hf_logits(tmp_path / "with_mtp")
    assert torch.equal(with_mtp, hf_logits(tmp_path / "plain"))
    with torch.no_grad():
        torch.testing.assert_close(with_mtp, model(ids), atol=1e-5, rtol=1e-5)
