"""A tiny Llama-architecture GGUF file written with the ``gguf`` package's own writer and quantizers, as llama.cpp's
converter lays it out: query and key rows in interleaved RoPE order, linear weights in block formats, norms in
float32, a byte-level BPE tokenizer (the 256 bytes, a few merges, ChatML's special tokens and template) in the
metadata.

``write_tiny_gguf(path)`` returns the float32 model whose weights were quantized into the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from llms_from_scratch.models import build_model, get_config
from llms_from_scratch.models.weights import unpermute_for_rope
from llms_from_scratch.tokenizers.bytes_map import byte_to_char

MERGES = ["Ġ t", "h e", "Ġt he", "i n", "a n"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML, as SmolLM2 and Qwen format a conversation
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# the block formats the layers are stored in: every format the quantized loader reads appears
LAYER_FORMATS = {"attn_q": "Q4_1", "attn_k": "Q4_1", "attn_v": "Q8_0", "attn_output": "Q4_0", "ffn_gate": "Q4_1",
                 "ffn_up": "Q4_1", "ffn_down": "Q4_0"}


def tiny_config(tie: bool = True):
    tokens = 256 + len(MERGES) + len(SPECIALS)
    return get_config("smollm2-135m", n_layers=2, emb_dim=64, n_heads=4, n_kv_groups=2, head_dim=16,
                      hidden_dim=128, vocab_size=tokens, context_length=64, tie_embeddings=tie)


def _tokens() -> list[str]:
    chars = byte_to_char()
    merged = ["".join(m.split(" ")) for m in MERGES]
    return [chars[b] for b in range(256)] + merged + SPECIALS


def write_tiny_gguf(path: str | Path, *, seed: int = 0, tie: bool = True, head_format: str = "Q8_0",
                    embedding_format: str = "Q8_0") -> torch.nn.Module:
    """Write a random two-layer SmolLM2-shaped model to ``path``; returns the float model it was made from."""
    import gguf

    torch.manual_seed(seed)
    cfg = tiny_config(tie)
    model = build_model(cfg).eval()
    with torch.no_grad():  # norms away from 1.0, so that a norm loaded in the wrong place shows
        for name, p in model.named_parameters():
            if name.endswith("scale"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    qtype = gguf.GGMLQuantizationType

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(cfg.n_layers)
    writer.add_context_length(cfg.context_length)
    writer.add_embedding_length(cfg.emb_dim)
    writer.add_feed_forward_length(cfg.hidden_dim)
    writer.add_head_count(cfg.n_heads)
    writer.add_head_count_kv(cfg.n_kv_groups)
    writer.add_key_length(cfg.head_dim)
    writer.add_value_length(cfg.head_dim)
    writer.add_rope_dimension_count(cfg.head_dim)
    writer.add_rope_freq_base(cfg.rope_base)
    writer.add_layer_norm_rms_eps(cfg.norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt2")
    tokens = _tokens()
    writer.add_token_list(tokens)
    writer.add_token_types([1] * (len(tokens) - len(SPECIALS)) + [3] * len(SPECIALS))
    writer.add_token_merges(MERGES)
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_chat_template(CHAT_TEMPLATE)
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))

    def put(name: str, tensor: torch.Tensor, fmt: str) -> None:
        values = tensor.detach().float().numpy()
        if fmt == "F32":
            writer.add_tensor(name, np.ascontiguousarray(values))
        else:
            writer.add_tensor(name, gguf.quants.quantize(values, qtype[fmt]), raw_dtype=qtype[fmt])

    put("token_embd.weight", model.tok_emb.weight, embedding_format)
    for i, block in enumerate(model.trf_blocks):
        weights = {
            "attn_q": unpermute_for_rope(block.att.W_query.weight, cfg.n_heads),  # llama.cpp's row order
            "attn_k": unpermute_for_rope(block.att.W_key.weight, cfg.n_kv_groups),
            "attn_v": block.att.W_value.weight, "attn_output": block.att.out_proj.weight,
            "ffn_gate": block.ff.fc1.weight, "ffn_up": block.ff.fc2.weight, "ffn_down": block.ff.fc3.weight,
        }
        put(f"blk.{i}.attn_norm.weight", block.norm1.scale, "F32")
        put(f"blk.{i}.ffn_norm.weight", block.norm2.scale, "F32")
        for name, weight in weights.items():
            put(f"blk.{i}.{name}.weight", weight, LAYER_FORMATS[name])
    put("output_norm.weight", model.final_norm.scale, "F32")
    if not tie:
        put("output.weight", model.out_head.weight, head_format)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model
