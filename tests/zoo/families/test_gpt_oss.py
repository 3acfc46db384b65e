"""gpt-oss: what the shared family recipe (``test_against_transformers.py``) does not reach.

The registered sizes against `transformers` on the meta device, the config.json round trip, MXFP4
dequantization bit for bit against `transformers`' own function, an MXFP4 checkpoint loading to the same model as
its dequantized twin, and the new options of the shared blocks (attention sinks in the prefill and decode paths,
the clamped SwiGLU experts with their biased top-k router, YaRN with untruncated ramp ends) against their
`transformers` counterparts.
"""

from __future__ import annotations

import json

import pytest
import torch
from family_cases import CASES
from zoo_reference import hf_reference

from llms_from_scratch.models import get_config, load_hf_checkpoint
from llms_from_scratch.models.blocks import make_cache
from llms_from_scratch.models.gpt_oss import CONFIGS, from_hf_config, fuse_experts, split_experts, to_hf_config
from llms_from_scratch.models.memory import kv_cache_bytes, parameter_counts
from llms_from_scratch.models.mxfp4 import dequantize_mxfp4
from llms_from_scratch.nn import GroupedQueryAttention, build_attention_mask
from llms_from_scratch.nn.moe import MoEFeedForward
from llms_from_scratch.nn.rope import rope_inv_freq

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")
NAME = "gpt-oss-20b"


def _hf_config(cfg):
    c = to_hf_config(cfg)
    c.pop("model_type")
    return transformers.GptOssConfig(**c)


@pytest.mark.parametrize("name, total, active", [("gpt-oss-20b", 20.91, 3.61), ("gpt-oss-120b", 116.83, 5.13)])
def test_registered_sizes_match_transformers_and_the_model_card(name, total, active):
    cfg = get_config(name)
    with torch.device("meta"):
        theirs = transformers.AutoModelForCausalLM.from_config(_hf_config(cfg))
    counts = parameter_counts(cfg)
    assert counts["total"] == sum(p.numel() for p in theirs.parameters())
    # the model card counts active parameters without the input embedding table (a lookup, not a product)
    assert (round(counts["total"] / 1e9, 2), round((counts["active"] - cfg.vocab_size * cfg.emb_dim) / 1e9, 2)) == (
        total, active)


def test_sliding_layers_cache_only_their_window():
    cfg = get_config(NAME, n_layers=4, layer_types=("sliding", "full", "sliding", "full"), vocab_size=8)
    cache = make_cache(cfg, 2, 5000, dtype=torch.bfloat16, device="cpu")
    assert cache.nbytes() == kv_cache_bytes(cfg, 5000, batch_size=2)
    per_token_layer = 2 * cfg.resolved_kv_groups * cfg.resolved_head_dim * 2  # keys and values, bfloat16
    assert cache.nbytes() == 2 * per_token_layer * (2 * 5000 + 2 * 128)  # 2 full layers, 2 windows of 128


def test_config_json_round_trip_and_transformers_defaults():
    for cfg in CONFIGS.values():
        assert from_hf_config(to_hf_config(cfg)) == cfg
    # transformers' defaults describe 120B; our config.json must read back the same way there
    theirs, default = _hf_config(get_config("gpt-oss-120b")), transformers.GptOssConfig()
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                "num_local_experts", "num_experts_per_tok", "intermediate_size", "vocab_size", "sliding_window",
                "layer_types", "swiglu_limit", "swiglu_alpha", "attention_bias", "rms_norm_eps",
                "max_position_embeddings", "rope_parameters", "tie_word_embeddings"):
        assert getattr(theirs, key) == getattr(default, key), key


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_mxfp4_dequantization_is_bit_exact_against_transformers(dtype):
    mxfp4 = pytest.importorskip("transformers.integrations.mxfp4")
    g = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 256, (3, 40, 4, 16), dtype=torch.uint8, generator=g)
    scales = torch.randint(0, 255, (3, 40, 4), dtype=torch.uint8, generator=g)  # every e8m0 exponent but NaN's
    theirs = mxfp4.convert_moe_packed_tensors(blocks, scales, dtype=dtype)  # (experts, in, out)
    ours = dequantize_mxfp4(blocks, scales, dtype).transpose(1, 2)  # (experts, out, in) -> theirs' layout
    bits = torch.int16 if dtype == torch.bfloat16 else torch.int32
    assert torch.equal(ours.contiguous().view(bits), theirs.view(bits))
    # a known byte: low nibble 0x3 (1.5) first, high nibble 0xA (-1.0) second, scale 2 ** (129 - 127)
    one = dequantize_mxfp4(torch.full((1, 1, 16), 0xA3, dtype=torch.uint8), torch.full((1, 1), 129, dtype=torch.uint8))
    assert one[0, :2].tolist() == [6.0, -4.0]
    with pytest.raises(ValueError, match="scales of shape"):
        dequantize_mxfp4(blocks, scales[..., :3])


def _packed(shape, g):
    # scales 2**-7 .. 2**-4: weights of at most 6/16, the size of the shrunk case's random weights
    blocks = torch.randint(0, 256, (*shape, 16), dtype=torch.uint8, generator=g)
    return blocks, torch.randint(120, 124, shape, dtype=torch.uint8, generator=g)


def test_mxfp4_checkpoint_loads_like_its_dequantized_twin(tmp_path):
    """A checkpoint in the official layout (experts as MXFP4 blocks + scales, everything else as it is) gives
    the same model as transformers' dequantization of it saved unquantized, and transformers' logits."""
    from safetensors.torch import load_file, save_file

    mxfp4 = pytest.importorskip("transformers.integrations.mxfp4")
    cfg = CASES[NAME]
    ref = hf_reference(cfg)
    g = torch.Generator().manual_seed(1)
    packed = {}
    with torch.no_grad():
        for i, layer in enumerate(ref.model.layers):
            experts = layer.mlp.experts
            for proj, rows, cols in (("gate_up_proj", 2 * cfg.moe.hidden_dim, cfg.emb_dim),
                                     ("down_proj", cfg.emb_dim, cfg.moe.hidden_dim)):
                blocks, scales = _packed((cfg.moe.n_experts, rows, cols // 32), g)
                packed[f"model.layers.{i}.mlp.experts.{proj}_blocks"] = blocks
                packed[f"model.layers.{i}.mlp.experts.{proj}_scales"] = scales
                getattr(experts, proj).copy_(mxfp4.convert_moe_packed_tensors(blocks, scales, dtype=torch.float32))
    plain, quantized = tmp_path / "plain", tmp_path / "mxfp4"
    ref.save_pretrained(plain)
    ref.save_pretrained(quantized)
    tensors = load_file(quantized / "model.safetensors")
    tensors = {k: v for k, v in tensors.items() if not k.endswith(("experts.gate_up_proj", "experts.down_proj"))}
    save_file({**tensors, **packed}, quantized / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((quantized / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn"]}
    (quantized / "config.json").write_text(json.dumps(config))

    ours, twin = load_hf_checkpoint(quantized), load_hf_checkpoint(plain)
    assert ours.cfg == twin.cfg == cfg
    state, twin_state = ours.state_dict(), twin.state_dict()
    assert all(torch.equal(state[k], twin_state[k]) and state[k].dtype == torch.float32 for k in twin_state)
    ids = torch.tensor([[5, 17, 300, 42, 8, 99, 123, 7, 250, 3, 11]])
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), ref(ids).logits, atol=1e-5, rtol=1e-5)
    bf16 = load_hf_checkpoint(quantized, dtype=torch.bfloat16)
    assert bf16.trf_blocks[0].ff.experts[0].fc1.weight.dtype == torch.bfloat16


def test_expert_hooks_invert_each_other_and_refuse_blocks_without_scales():
    cfg = CASES[NAME]
    e, h, d = cfg.moe.n_experts, cfg.moe.hidden_dim, cfg.emb_dim
    g = torch.Generator().manual_seed(0)
    p = "model.layers.0.mlp.experts."
    stored = {p + "gate_up_proj": torch.randn(e, d, 2 * h, generator=g), p + "gate_up_proj_bias": torch.randn(e, 2 * h),
              p + "down_proj": torch.randn(e, h, d, generator=g), p + "down_proj_bias": torch.randn(e, d)}
    names, get = split_experts(list(stored), stored.__getitem__, cfg.replace(n_layers=1, layer_types=("sliding",)))
    assert len(names) == 6 * e
    # expert 2's gate is column 2j of its fused matrix, its up projection column 2j + 1 (stored input-major)
    torch.testing.assert_close(get(p + "2.gate_proj.weight"), stored[p + "gate_up_proj"][2, :, 0::2].T)
    torch.testing.assert_close(get(p + "2.up_proj.bias"), stored[p + "gate_up_proj_bias"][2, 1::2])
    back = fuse_experts({n: get(n) for n in names}, cfg.replace(n_layers=1, layer_types=("sliding",)))
    assert back.keys() == stored.keys() and all(torch.equal(back[k], stored[k]) for k in stored)
    with pytest.raises(ValueError, match="_scales"):
        split_experts([p + "down_proj_blocks"], stored.__getitem__, cfg)


def _eager_sink_attention(att, x, mask):
    """The sink softmax written out as transformers' eager gpt-oss attention does it (no RoPE)."""
    b, t, _ = x.shape
    q = att.W_query(x).view(b, t, att.n_heads, -1).transpose(1, 2)
    k = att.W_key(x).view(b, t, att.n_kv_groups, -1).transpose(1, 2).repeat_interleave(att.n_heads // att.n_kv_groups, 1)
    v = att.W_value(x).view(b, t, att.n_kv_groups, -1).transpose(1, 2).repeat_interleave(att.n_heads // att.n_kv_groups, 1)
    scores = (q @ k.transpose(-1, -2)) * att.head_dim**-0.5
    scores = scores.masked_fill(~mask, float("-inf"))
    sinks = att.sinks.view(1, -1, 1, 1).expand(b, -1, t, 1)
    weights = torch.softmax(torch.cat([scores, sinks], dim=-1), dim=-1)[..., :-1]
    return att.out_proj((weights @ v).transpose(1, 2).reshape(b, t, -1))


def test_attention_sinks_in_the_prefill_and_decode_paths():
    torch.manual_seed(0)
    att = GroupedQueryAttention(32, 4, 2, 8, qkv_bias=True, out_bias=True, sinks=True).eval()
    with torch.no_grad():
        att.sinks.copy_(torch.tensor([2.0, -1.0, 0.5, 3.0]))  # large enough to take a visible share
    x = torch.randn(2, 6, 32)
    valid = torch.ones(2, 6, dtype=torch.bool)
    valid[1, :2] = False  # left padding in the second row
    mask = build_attention_mask(6, valid, sliding_window=3)
    with torch.no_grad():
        expected = _eager_sink_attention(att, x, mask)
        torch.testing.assert_close(att(x, mask), expected, atol=1e-6, rtol=1e-6)  # SDPA with a sink key
        torch.testing.assert_close(att(x, None), _eager_sink_attention(att, x, build_attention_mask(6, valid[:1])),
                                   atol=1e-6, rtol=1e-6)
        # the last query alone over all keys takes the written-out decode path
        k = att.W_key(x).view(2, 6, 2, 8).transpose(1, 2)
        v = att.W_value(x).view(2, 6, 2, 8).transpose(1, 2)

        class Keys:  # a cache stand-in that returns the six tokens' keys and values
            @staticmethod
            def write(layer, k_new, v_new):
                return k, v

        last = att(x[:, -1:], mask[:, :, -1:], cache=Keys())
        torch.testing.assert_close(last, expected[:, -1:], atol=1e-6, rtol=1e-6)
        plain = GroupedQueryAttention(32, 4, 2, 8, qkv_bias=True, out_bias=True).eval()
        plain.load_state_dict({k: v for k, v in att.state_dict().items() if k != "sinks"})
        assert (plain(x, mask) - att(x, mask)).abs().max() > 1e-2  # the sinks take a visible share
        att.sinks.fill_(-1e4)  # a sink nobody attends to leaves plain attention
        torch.testing.assert_close(att(x, mask), plain(x, mask), atol=1e-6, rtol=1e-6)


def test_clamped_experts_and_router_match_transformers():
    module = pytest.importorskip("transformers.models.gpt_oss.modeling_gpt_oss")
    cfg = CASES[NAME]
    config = _hf_config(cfg.replace(moe=cfg.moe.__class__(**{**cfg.moe.__dict__, "swiglu_limit": 7.0})))
    config._experts_implementation = "eager"
    torch.manual_seed(0)
    theirs = module.GptOssMLP(config).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_(0, 0.3)
    ours = MoEFeedForward(cfg.emb_dim, cfg.moe.__class__(**{**cfg.moe.__dict__, "swiglu_limit": 7.0})).eval()
    e = theirs.experts
    with torch.no_grad():
        ours.gate.weight.copy_(theirs.router.weight)
        ours.gate.bias.copy_(theirs.router.bias)
        for i, expert in enumerate(ours.experts):
            expert.fc1.weight.copy_(e.gate_up_proj[i, :, 0::2].T)
            expert.fc2.weight.copy_(e.gate_up_proj[i, :, 1::2].T)
            expert.fc1.bias.copy_(e.gate_up_proj_bias[i, 0::2])
            expert.fc2.bias.copy_(e.gate_up_proj_bias[i, 1::2])
            expert.fc3.weight.copy_(e.down_proj[i].T)
            expert.fc3.bias.copy_(e.down_proj_bias[i])
        x = 3 * torch.randn(2, 9, cfg.emb_dim)
        gate_up = x.reshape(-1, cfg.emb_dim) @ e.gate_up_proj[0] + e.gate_up_proj_bias[0]
        assert gate_up.max() > 7 and gate_up[:, 1::2].min() < -7  # both clamps are reached
        torch.testing.assert_close(ours(x), theirs(x)[0], atol=1e-5, rtol=1e-5)


def test_untruncated_yarn_matches_transformers():
    module = pytest.importorskip("transformers.models.gpt_oss.modeling_gpt_oss")
    for cfg in (get_config(NAME), CASES[NAME]):
        rotary = module.GptOssRotaryEmbedding(_hf_config(cfg))
        inv_freq, factor = rope_inv_freq(cfg.resolved_head_dim, cfg.rope_base, cfg.rope_scaling)
        assert torch.equal(inv_freq, rotary.inv_freq) and factor == rotary.attention_scaling
    truncated = rope_inv_freq(64, 150_000.0, get_config(NAME).rope_scaling.__class__(
        "yarn", factor=32.0, original_context_length=4096))[0]
    assert not torch.equal(truncated, rope_inv_freq(64, 150_000.0, get_config(NAME).rope_scaling)[0])


def test_hub_config_json_reads_as_the_registered_config():
    """The official 20B config.json layout (transformers 4 spelling: rope_theta + rope_scaling, the MXFP4
    quantization note, the original repository's own keys beside transformers' ones)."""
    hub = {
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "attention_bias": True,
        "attention_dropout": 0.0, "eos_token_id": 200002, "pad_token_id": 199999, "experts_per_token": 4,
        "num_experts_per_tok": 4, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880,
        "initial_context_length": 4096, "initializer_range": 0.02, "intermediate_size": 2880,
        "layer_types": ["sliding_attention", "full_attention"] * 12, "max_position_embeddings": 131072,
        "num_attention_heads": 64, "num_hidden_layers": 24, "num_key_value_heads": 8, "num_local_experts": 32,
        "output_router_logits": False, "quantization_config": {"quant_method": "mxfp4"}, "rms_norm_eps": 1e-05,
        "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096,
                         "rope_type": "yarn", "truncate": False},
        "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0,
        "tie_word_embeddings": False, "use_cache": True, "vocab_size": 201088,
    }
    cfg = from_hf_config(hub)
    assert cfg == get_config(NAME) and cfg.info("eos_token_id") == 200002
    with pytest.raises(ValueError, match="bitsandbytes"):
        from_hf_config({**hub, "quantization_config": {"quant_method": "bitsandbytes"}})
