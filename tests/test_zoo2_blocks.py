"""Zoo II mechanisms on their own: the ring-buffer cache, latent attention's absorbed path, MoE routing and its
auxiliary loss, FP8 block dequantization, and the errors for checkpoints that do not fit."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from zoo_reference import one_thread

from llms_from_scratch.models import build_model, get_config, load_hf_checkpoint, save_hf_checkpoint
from llms_from_scratch.models.checkpoint_hooks import dequantize_block_fp8
from llms_from_scratch.nn import MLAConfig, MoEConfig, RingKVCache, RopeScaling, load_balancing_loss
from llms_from_scratch.nn.moe import collect_router_logits, route

SMALL = dict(vocab_size=256, emb_dim=32, n_layers=2, hidden_dim=48, context_length=256)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    yield from one_thread()


def random_model(cfg, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
            else:
                p.copy_(1 + 0.1 * torch.randn_like(p))
    return model


def stepwise_logits(model, ids, mask, chunks, max_length=None):
    """Feed ``ids`` through the cache in chunks of the given sizes; return the concatenated logits."""
    cache = model.new_cache(ids.shape[0], max_length or ids.shape[1])
    out, start = [], 0
    with torch.no_grad():
        for size in chunks:
            out.append(model(ids[:, start : start + size], mask[:, start : start + size], cache=cache))
            start += size
    assert start == ids.shape[1]
    return torch.cat(out, dim=1), cache


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


def test_mla_absorbed_decode_equals_naive():
    cfg = get_config(
        "deepseek-v3", **SMALL, n_heads=4, head_dim=24,
        mla=MLAConfig(kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, q_lora_rank=24,
                      mscale_all_dim=1.0),
        moe=MoEConfig(n_experts=4, n_experts_per_tok=2, hidden_dim=16, scoring="sigmoid", n_groups=2,
                      topk_groups=1, routed_scaling=2.5, n_shared_experts=1, correction_bias=True,
                      first_dense_layers=1),
        rope_scaling=RopeScaling("yarn", factor=8.0, original_context_length=16, attention_factor=1.0),
    )
    model = random_model(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 20), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    naive, cache = stepwise_logits(model, ids, mask, [8] + [1] * 12)
    # the cache holds the latent and the shared rope key only: kv_lora_rank + qk_rope_head_dim per token
    assert cache.keys.shape[-1] == 16 and cache.values.shape[-1] == 8 and cache.keys.shape[2] == 1
    for block in model.trf_blocks:
        block.att.absorb = True
    absorbed, _ = stepwise_logits(model, ids, mask, [8] + [1] * 12)
    real = mask.bool()
    torch.testing.assert_close(absorbed[real], naive[real], atol=1e-5, rtol=1e-5)


def test_sigmoid_routing_keeps_groups_and_weights_from_unbiased_scores():
    cfg = MoEConfig(n_experts=8, n_experts_per_tok=2, hidden_dim=4, scoring="sigmoid", n_groups=4, topk_groups=2,
                    routed_scaling=2.5, correction_bias=True)
    logits = torch.randn(50, 8, generator=torch.Generator().manual_seed(3))
    bias = torch.tensor([3.0, 0, 0, 0, 0, 0, 0, 0])  # expert 0 always wins the selection
    weights, ids = route(logits, cfg, bias)
    assert (ids == 0).any(dim=-1).all()
    scores = logits.sigmoid()
    chosen = scores.gather(1, ids)
    torch.testing.assert_close(weights, 2.5 * chosen / chosen.sum(dim=-1, keepdim=True))
    # every pick lies in one of the 2 best groups (rated by the sum of their 2 best biased scores)
    group_score = (scores + bias).view(50, 4, 2).sum(dim=-1)
    kept = group_score.topk(2, dim=-1).indices
    assert all(set((ids[i] // 2).tolist()) <= set(kept[i].tolist()) for i in range(50))


def test_load_balancing_loss_matches_transformers():
    transformers = pytest.importorskip("transformers")
    from transformers.models.qwen3_moe.modeling_qwen3_moe import load_balancing_loss_func

    cfg = get_config("qwen3-30b-a3b", **SMALL, n_heads=4, n_kv_groups=2, head_dim=8,
                     moe=MoEConfig(n_experts=6, n_experts_per_tok=2, hidden_dim=16))
    model = random_model(cfg).train()
    ids = torch.randint(0, cfg.vocab_size, (2, 9), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    model(ids, mask)
    logits = collect_router_logits(model)
    assert len(logits) == cfg.n_layers
    for m in (None, mask):
        ours = load_balancing_loss(logits, 6, 2, attention_mask=m)
        torch.testing.assert_close(ours, load_balancing_loss_func(tuple(logits), 6, 2, attention_mask=m))
    ours.backward()  # the loss trains the routers
    assert model.trf_blocks[0].ff.gate.weight.grad.abs().sum() > 0
    assert transformers is not None


def independent_dequant(q: torch.Tensor, scale: torch.Tensor, b: int) -> torch.Tensor:
    """Pad to whole blocks, scale each (b x b) tile, crop: a different route to the same numbers."""
    rows, cols = q.shape
    padded = torch.zeros(math.ceil(rows / b) * b, math.ceil(cols / b) * b)
    padded[:rows, :cols] = q.float()
    tiles = padded.view(padded.shape[0] // b, b, padded.shape[1] // b, b) * scale[:, None, :, None]
    return tiles.reshape(padded.shape)[:rows, :cols].contiguous()


def quantize_fp8(w: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = w.shape
    scale = torch.empty(math.ceil(rows / b), math.ceil(cols / b))
    q = torch.empty(rows, cols, dtype=torch.float8_e4m3fn)
    for i in range(scale.shape[0]):
        for j in range(scale.shape[1]):
            tile = w[i * b : (i + 1) * b, j * b : (j + 1) * b]
            scale[i, j] = tile.abs().max() / 448.0
            q[i * b : (i + 1) * b, j * b : (j + 1) * b] = (tile / scale[i, j]).to(torch.float8_e4m3fn)
    return q, scale


def test_fp8_block_dequantization_with_ragged_blocks(tmp_path):
    cfg = get_config(
        "deepseek-v3", **SMALL, n_heads=2, head_dim=24,
        mla=MLAConfig(kv_lora_rank=20, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, q_lora_rank=24),
        moe=MoEConfig(n_experts=4, n_experts_per_tok=2, hidden_dim=24, scoring="sigmoid", n_groups=2,
                      topk_groups=1, n_shared_experts=1, correction_bias=True, first_dense_layers=1),
        rope_scaling=None,
    )
    save_hf_checkpoint(random_model(cfg), tmp_path / "plain")
    tensors = load_file(tmp_path / "plain" / "model.safetensors")
    block = 16  # 24 = 1.5 blocks and 28 (kv_a_proj_with_mqa: 20 + 8) = 1.75 blocks: ragged, like 576 = 4.5 * 128
    quantized, dequantized = {}, {}
    for name, w in tensors.items():
        is_linear = w.dim() == 2 and ("self_attn" in name or "_proj" in name) and "embed" not in name
        if is_linear:
            q, scale = quantize_fp8(w, block)
            quantized[name], quantized[name + "_scale_inv"] = q, scale
            dequantized[name] = independent_dequant(q, scale, block)
        else:
            quantized[name] = dequantized[name] = w
    assert torch.equal(dequantize_block_fp8(quantized["model.layers.0.self_attn.kv_a_proj_with_mqa.weight"],
                                            quantized["model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv"],
                                            (block, block)),
                       dequantized["model.layers.0.self_attn.kv_a_proj_with_mqa.weight"])
    config = json.loads((tmp_path / "plain" / "config.json").read_text())
    # the multi-token-prediction layer (index n_layers) is present in real files and must not break loading
    quantized[f"model.layers.{cfg.n_layers}.eh_proj.weight"] = torch.zeros(cfg.emb_dim, 2 * cfg.emb_dim)
    for folder, state, extra in [("fp8", quantized, {"quantization_config": {
            "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [block, block]}}),
            ("dequantized", dequantized, {})]:
        (tmp_path / folder).mkdir()
        save_file(state, str(tmp_path / folder / "model.safetensors"))
        (tmp_path / folder / "config.json").write_text(json.dumps({**config, **extra}))
    from_fp8 = load_hf_checkpoint(tmp_path / "fp8", dtype=torch.float32).state_dict()
    reference = load_hf_checkpoint(tmp_path / "dequantized", dtype=torch.float32).state_dict()
    assert from_fp8.keys() == reference.keys()
    assert all(torch.equal(from_fp8[k], reference[k]) for k in reference)
    # without a dtype the dequantized weights come out in bfloat16, like DeepSeek's own conversion
    assert load_hf_checkpoint(tmp_path / "fp8").trf_blocks[0].att.W_kv_down.weight.dtype == torch.bfloat16

    # a float8 weight whose scale is missing is refused, naming the tensor
    del quantized["model.layers.1.self_attn.o_proj.weight_scale_inv"]
    save_file(quantized, str(tmp_path / "fp8" / "model.safetensors"))
    with pytest.raises(ValueError, match=r"o_proj\.weight is stored in torch\.float8_e4m3fn.*_scale_inv"):
        load_hf_checkpoint(tmp_path / "fp8")


def test_mismatched_expert_count_is_a_clear_error(tmp_path):
    cfg = get_config("qwen3-30b-a3b", **SMALL, n_heads=4, n_kv_groups=2, head_dim=8,
                     moe=MoEConfig(n_experts=6, n_experts_per_tok=2, hidden_dim=16))
    save_hf_checkpoint(random_model(cfg), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_experts": 8}))
    with pytest.raises(ValueError, match=r"layer 0 of the checkpoint holds 6 experts .* n_experts=8"):
        load_hf_checkpoint(tmp_path)
    with pytest.raises(ValueError, match=r"n_experts_per_tok \(9\) must be in 1..n_experts \(6\)"):
        MoEConfig(n_experts=6, n_experts_per_tok=9, hidden_dim=16)
