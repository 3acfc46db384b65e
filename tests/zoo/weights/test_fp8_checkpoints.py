"""DeepSeek-V3's FP8 checkpoints: block-wise dequantization with ragged edge blocks gives the same model as the
dequantized weights, and a float8 weight without its scale is refused."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from zoo_reference import random_model

from llms_from_scratch.models import get_config, load_hf_checkpoint, save_hf_checkpoint
from llms_from_scratch.models.checkpoint_hooks import dequantize_block_fp8
from llms_from_scratch.nn import MLAConfig, MoEConfig

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(vocab_size=256, emb_dim=32, n_layers=2, hidden_dim=48, context_length=256)


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
