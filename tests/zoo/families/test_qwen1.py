"""Qwen1 equals `transformers`' Qwen2 under the documented equivalences, loaded from Qwen1's own key layout.

There is no native Qwen1 class in `transformers` (it ships as remote code), but within ``seq_length`` it is
numerically Qwen2 with full multi-head attention, q/k/v biases, no output bias and an MLP half the
``intermediate_size`` in Qwen1's config. The test builds a random Qwen2 model, rewrites its weights into
Qwen1's layout (fused ``c_attn``, ``w2`` = gate, ``w1`` = up) with a Qwen1 ``config.json``, and loads that.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from llms_from_scratch.generation import generate, left_pad
from llms_from_scratch.models import load_hf_checkpoint, save_hf_checkpoint

transformers = pytest.importorskip("transformers")
from zoo_reference import randomize_  # noqa: E402

SEQ_LENGTH = 32
QWEN1_CONFIG = {  # Qwen-7B's config.json, shrunk
    "architectures": ["QWenLMHeadModel"], "model_type": "qwen", "vocab_size": 512, "hidden_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 4, "kv_channels": 16, "intermediate_size": 192,
    "layer_norm_epsilon": 1e-6, "rotary_emb_base": 10000, "rotary_pct": 1.0, "seq_length": SEQ_LENGTH,
    "max_position_embeddings": 128, "use_dynamic_ntk": True, "use_logn_attn": True, "no_bias": True,
    "scale_attn_weights": True, "tie_word_embeddings": False, "eos_token_id": 151643,
}
PROMPTS = [[5, 17, 300, 42, 8, 99, 123, 7, 250, 3, 11], [401, 2, 77], [9, 8, 7, 6, 5, 4, 3]]


pytestmark = pytest.mark.usefixtures("one_thread")


def qwen1_layout(qwen2_state: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    out = {"transformer.wte.weight": qwen2_state["model.embed_tokens.weight"],
           "transformer.ln_f.weight": qwen2_state["model.norm.weight"], "lm_head.weight": qwen2_state["lm_head.weight"]}
    for i in range(n_layers):
        src, dst = f"model.layers.{i}.", f"transformer.h.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.c_attn.{kind}"] = torch.cat(
                [qwen2_state[src + f"self_attn.{p}_proj.{kind}"] for p in "qkv"], dim=0)
        out[dst + "attn.c_proj.weight"] = qwen2_state[src + "self_attn.o_proj.weight"]
        out[dst + "ln_1.weight"] = qwen2_state[src + "input_layernorm.weight"]
        out[dst + "ln_2.weight"] = qwen2_state[src + "post_attention_layernorm.weight"]
        out[dst + "mlp.w2.weight"] = qwen2_state[src + "mlp.gate_proj.weight"]  # w2 goes through silu
        out[dst + "mlp.w1.weight"] = qwen2_state[src + "mlp.up_proj.weight"]
        out[dst + "mlp.c_proj.weight"] = qwen2_state[src + "mlp.down_proj.weight"]
    return {k: v.contiguous() for k, v in out.items()}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    c = QWEN1_CONFIG
    qwen2 = transformers.Qwen2Config(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"], num_key_value_heads=c["num_attention_heads"],  # MHA
        intermediate_size=c["intermediate_size"] // 2, rms_norm_eps=c["layer_norm_epsilon"],
        rope_theta=c["rotary_emb_base"], max_position_embeddings=c["max_position_embeddings"],
        tie_word_embeddings=False,
    )
    ref = transformers.Qwen2ForCausalLM._from_config(qwen2, attn_implementation="eager", dtype=torch.float32)
    ref.generation_config.eos_token_id = None
    ref.generation_config.pad_token_id = 0
    randomize_(ref).eval()
    folder = tmp_path_factory.mktemp("qwen1")
    save_file(qwen1_layout(ref.state_dict(), c["num_hidden_layers"]), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(c))
    return ref, load_hf_checkpoint(folder), folder


def test_logits_match_qwen2(pair):
    ref, ours, _ = pair
    ids = torch.tensor([PROMPTS[0] + PROMPTS[2] + PROMPTS[1]])
    with torch.no_grad():
        expected = ref(ids).logits
        got = ours(ids)
    assert expected.abs().max() > 1.0
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_greedy_cached_uncached_and_batched(pair):
    ref, ours, _ = pair
    new = SEQ_LENGTH - len(PROMPTS[0])  # up to the last position Qwen1 computes like Qwen2
    ids = torch.tensor([PROMPTS[0]])
    expected = ref.generate(ids, max_new_tokens=new, do_sample=False)
    assert generate(ours, ids, new).tolist() == expected.tolist()
    assert generate(ours, ids, new, use_cache=False).tolist() == expected.tolist()
    batch, mask = left_pad(PROMPTS)
    batched = generate(ours, batch, 8, attention_mask=mask)
    for row, prompt in enumerate(PROMPTS):
        assert batched[row, -8:].tolist() == generate(ours, torch.tensor([prompt]), 8)[0, -8:].tolist()


def test_prompt_beyond_seq_length_is_refused(pair):
    _, ours, _ = pair
    with pytest.raises(ValueError, match=r"beyond this qwen1 model's context_length 32.*dynamic NTK"):
        ours(torch.zeros(1, SEQ_LENGTH + 1, dtype=torch.long))
    # generation that would cross the limit is refused before it starts, naming both numbers
    with pytest.raises(ValueError, match=rf"more than this model's context of {SEQ_LENGTH}"):
        generate(ours, torch.tensor([PROMPTS[0]]), SEQ_LENGTH)


def test_export_writes_qwen1_layout(pair, tmp_path):
    _, ours, folder = pair
    save_hf_checkpoint(ours, tmp_path)
    original, exported = load_file(folder / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert original.keys() == exported.keys()
    assert all(torch.equal(original[k], exported[k]) for k in original)
    config = json.loads((tmp_path / "config.json").read_text())
    assert {k: config[k] for k in QWEN1_CONFIG} == {k: v for k, v in QWEN1_CONFIG.items()} | {
        "max_position_embeddings": 128, "rotary_emb_base": 10000.0}
