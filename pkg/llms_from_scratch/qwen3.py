"""Chapter 5 bonus: Qwen3 built from the book's Llama pieces, dense and mixture-of-experts.

Qwen3 keeps Llama 3's layout (RMSNorm before each sub-layer, SwiGLU feed-forward, RoPE, grouped-query attention,
no biases) and adds **QK-norm**: an RMSNorm over every query head and every key head, applied before RoPE.
The 30B-A3B model replaces the feed-forward network with a **mixture of experts**: a router sends each token to
8 of 128 small SwiGLU networks. The code reads top to bottom: norm, RoPE, feed-forward, experts, attention,
block, model; then the loader for Hugging Face checkpoints, the tokenizer and the download helpers.

``Qwen3Model(QWEN_CONFIG_06_B)`` has the architecture of Qwen3-0.6B; ``load_weights_into_qwen`` fills it from
the checkpoint's tensors. ``kv_cache.qwen3`` and ``kv_cache_batched.qwen3`` reuse these modules with a KV cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .data import AssetUnavailableError

__all__ = [
    "QWEN_CONFIG_06_B",
    "QWEN3_CONFIG_1_7B",
    "QWEN3_CONFIG_4B",
    "QWEN3_CONFIG_8B",
    "QWEN3_CONFIG_14B",
    "QWEN3_CONFIG_32B",
    "QWEN3_CONFIG_30B_A3B",
    "RMSNorm",
    "compute_rope_params",
    "apply_rope",
    "FeedForward",
    "MoEFeedForward",
    "GroupedQueryAttention",
    "TransformerBlock",
    "Qwen3Model",
    "load_weights_into_qwen",
    "Qwen3Tokenizer",
    "download_from_huggingface",
    "download_from_huggingface_from_snapshots",
]

# 0.6 billion parameters (the book's name for it has no "3")
QWEN_CONFIG_06_B: dict[str, Any] = {
    "vocab_size": 151_936,  # 151,643 BPE tokens + special tokens, padded to a multiple of 128
    "context_length": 40_960,  # longest input seen in training
    "emb_dim": 1024,  # width of every token vector
    "n_heads": 16,  # query heads
    "n_layers": 28,  # transformer blocks
    "hidden_dim": 3072,  # width inside the SwiGLU feed-forward network
    "head_dim": 128,  # fixed for every size, so n_heads * head_dim need not equal emb_dim
    "qk_norm": True,  # RMSNorm over each query and key head before RoPE
    "n_kv_groups": 8,  # key/value heads; each serves n_heads / n_kv_groups query heads
    "rope_base": 1_000_000.0,  # RoPE's theta: a large base keeps far-apart positions distinguishable
    "dtype": torch.bfloat16,  # the checkpoints' precision; halves memory compared with float32
}

# 1.7 billion parameters
QWEN3_CONFIG_1_7B: dict[str, Any] = {
    **QWEN_CONFIG_06_B,
    "emb_dim": 2048,  # 2x the 0.6B model
    "hidden_dim": 6144,  # 2x the 0.6B model
}

# 4 billion parameters
QWEN3_CONFIG_4B: dict[str, Any] = {
    **QWEN_CONFIG_06_B,
    "emb_dim": 2560,  # 25% wider than 1.7B
    "n_heads": 32,  # 2x the heads of 1.7B
    "n_layers": 36,
    "hidden_dim": 9728,
}

# 8 billion parameters
QWEN3_CONFIG_8B: dict[str, Any] = {
    **QWEN_CONFIG_06_B,
    "emb_dim": 4096,  # 60% wider than 4B
    "n_heads": 32,
    "n_layers": 36,
    "hidden_dim": 12288,
}

# 14 billion parameters
QWEN3_CONFIG_14B: dict[str, Any] = {
    **QWEN_CONFIG_06_B,
    "emb_dim": 5120,  # 25% wider than 8B
    "n_heads": 40,
    "n_layers": 40,
    "hidden_dim": 17408,
}

# 32 billion parameters
QWEN3_CONFIG_32B: dict[str, Any] = {
    **QWEN_CONFIG_06_B,
    "emb_dim": 5120,
    "n_heads": 64,  # 60% more heads than 14B
    "n_layers": 64,
    "hidden_dim": 25600,
}

# 30.5 billion parameters, 3.3 billion active per token: a mixture of experts in every block.
# Context length and RoPE base are those of the July 2025 update (Qwen3-30B-A3B-Instruct-2507).
QWEN3_CONFIG_30B_A3B: dict[str, Any] = {
    "vocab_size": 151_936,
    "context_length": 262_144,
    "emb_dim": 2048,
    "n_heads": 32,
    "n_layers": 48,
    "head_dim": 128,
    "qk_norm": True,
    "n_kv_groups": 4,
    "rope_base": 10_000_000.0,
    "dtype": torch.bfloat16,
    "num_experts": 128,  # SwiGLU experts per block
    "num_experts_per_tok": 8,  # the router's top-k
    "moe_intermediate_size": 768,  # width inside each expert
}


class RMSNorm(nn.Module):
    """Scale each vector to a root-mean-square of 1, then by a learned per-feature scale (no mean, no shift).

    ``qwen3_compatible=True`` computes in float32 whatever the input dtype, as Qwen3's reference code does, and
    returns the input dtype. ``bias=True`` adds a learned shift (some other models have one).
    """

    def __init__(self, emb_dim: int, eps: float = 1e-6, bias: bool = False, qwen3_compatible: bool = True):
        super().__init__()
        self.eps = eps
        self.qwen3_compatible = qwen3_compatible
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        input_dtype = x.dtype
        if self.qwen3_compatible:
            x = x.to(torch.float32)  # squares of bfloat16 values lose too many digits
        variance = x.pow(2).mean(dim=-1, keepdim=True)
        norm_x = x * torch.rsqrt(variance + self.eps) * self.scale
        if self.shift is not None:
            norm_x = norm_x + self.shift
        return norm_x.to(input_dtype)


def compute_rope_params(head_dim: int, theta_base: float = 10_000, context_length: int = 4096,
                        dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables of shape (context_length, head_dim) for rotary position embeddings.

    Feature pair ``(i, i + head_dim/2)`` turns by ``position * theta_base ** (-2i / head_dim)``: fast
    rotations for the first pairs, slow ones for the last.
    """
    if head_dim % 2:
        raise ValueError(f"RoPE rotates pairs of features, so head_dim must be even, got {head_dim}")
    inv_freq = 1.0 / (theta_base ** (torch.arange(0, head_dim, 2, dtype=dtype).float() / head_dim))
    positions = torch.arange(context_length, dtype=dtype)
    angles = positions[:, None] * inv_freq[None, :]  # (context_length, head_dim // 2)
    angles = torch.cat([angles, angles], dim=1)  # (context_length, head_dim): both halves of a pair share an angle
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` of shape (batch, heads, seq_len, head_dim) by its positions' angles.

    ``cos`` and ``sin`` are the tables of :func:`compute_rope_params` (their first ``seq_len`` rows are used),
    or tables already gathered for each row's positions, of shape (batch, 1, seq_len, head_dim).
    """
    seq_len, head_dim = x.shape[-2:]
    x1 = x[..., : head_dim // 2]  # first feature of every pair
    x2 = x[..., head_dim // 2 :]  # second feature of every pair
    rotated = torch.cat((-x2, x1), dim=-1)  # (x1, x2) -> (-x2, x1): a quarter turn of every pair
    cos = cos[..., :seq_len, :]  # broadcasts over batch and heads
    sin = sin[..., :seq_len, :]
    x_rotated = x * cos + rotated * sin  # x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin
    return x_rotated.to(dtype=x.dtype)  # the tables are float32; return the input's precision


class FeedForward(nn.Module):
    """SwiGLU: ``fc3(silu(fc1(x)) * fc2(x))``; the SiLU branch gates the linear branch feature by feature."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.fc1 = nn.Linear(cfg["emb_dim"], cfg["hidden_dim"], dtype=cfg["dtype"], bias=False)
        self.fc2 = nn.Linear(cfg["emb_dim"], cfg["hidden_dim"], dtype=cfg["dtype"], bias=False)
        self.fc3 = nn.Linear(cfg["hidden_dim"], cfg["emb_dim"], dtype=cfg["dtype"], bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(nn.functional.silu(self.fc1(x)) * self.fc2(x))


class MoEFeedForward(nn.Module):
    """Mixture of experts: ``num_experts`` SwiGLU networks, of which each token uses ``num_experts_per_tok``.

    The router (``gate``) scores every expert; the token goes to the top-k, and their outputs are summed with
    weights from a softmax over the k chosen scores. Expert ``e`` is ``fc1[e]``, ``fc2[e]``, ``fc3[e]``.
    """

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.num_experts = cfg["num_experts"]
        self.num_experts_per_tok = cfg["num_experts_per_tok"]
        emb_dim, hidden, dtype = cfg["emb_dim"], cfg["moe_intermediate_size"], cfg["dtype"]
        self.gate = nn.Linear(emb_dim, self.num_experts, bias=False, dtype=dtype)
        self.fc1 = nn.ModuleList(nn.Linear(emb_dim, hidden, bias=False, dtype=dtype) for _ in range(self.num_experts))
        self.fc2 = nn.ModuleList(nn.Linear(emb_dim, hidden, bias=False, dtype=dtype) for _ in range(self.num_experts))
        self.fc3 = nn.ModuleList(nn.Linear(hidden, emb_dim, bias=False, dtype=dtype) for _ in range(self.num_experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_size, num_tokens, emb_dim = x.shape
        x_flat = x.reshape(-1, emb_dim)  # (batch_size * num_tokens, emb_dim): routing is per token
        scores = self.gate(x_flat)  # (tokens, num_experts)
        topk_scores, topk_experts = torch.topk(scores, self.num_experts_per_tok, dim=-1)  # (tokens, k)
        # a softmax over the k chosen scores equals a softmax over all scores renormalized over the top k
        topk_probs = torch.softmax(topk_scores, dim=-1)

        out = torch.zeros_like(x_flat)
        for expert in topk_experts.unique().tolist():  # only the experts some token chose do any work
            token_idx, slot = torch.where(topk_experts == expert)  # tokens routed here, and in which of their k slots
            expert_in = x_flat[token_idx]
            expert_out = self.fc3[expert](nn.functional.silu(self.fc1[expert](expert_in)) * self.fc2[expert](expert_in))
            out.index_add_(0, token_idx, expert_out * topk_probs[token_idx, slot, None])
        return out.view(batch_size, num_tokens, emb_dim)


class GroupedQueryAttention(nn.Module):
    """Causal self-attention in which groups of query heads share one key head and one value head.

    ``num_kv_groups`` key/value heads serve ``num_heads`` query heads (``num_heads / num_kv_groups`` each), so
    the KV cache is that much smaller. With ``qk_norm``, an RMSNorm over ``head_dim`` normalizes every query
    and key head before RoPE, which keeps attention scores in a stable range.
    """

    def __init__(self, d_in: int, num_heads: int, num_kv_groups: int, head_dim: int | None = None,
                 qk_norm: bool = False, dtype: torch.dtype | None = None):
        super().__init__()
        if num_heads % num_kv_groups:
            raise ValueError(f"num_heads ({num_heads}) must be divisible by num_kv_groups ({num_kv_groups})")
        if head_dim is None:
            if d_in % num_heads:
                raise ValueError(f"d_in ({d_in}) must be divisible by num_heads ({num_heads}), or pass head_dim")
            head_dim = d_in // num_heads
        self.num_heads = num_heads
        self.num_kv_groups = num_kv_groups
        self.group_size = num_heads // num_kv_groups
        self.head_dim = head_dim
        self.d_out = num_heads * head_dim

        self.W_query = nn.Linear(d_in, self.d_out, bias=False, dtype=dtype)
        self.W_key = nn.Linear(d_in, num_kv_groups * head_dim, bias=False, dtype=dtype)
        self.W_value = nn.Linear(d_in, num_kv_groups * head_dim, bias=False, dtype=dtype)
        self.out_proj = nn.Linear(self.d_out, d_in, bias=False, dtype=dtype)
        if qk_norm:
            self.q_norm = RMSNorm(head_dim, eps=1e-6)  # Qwen3's rms_norm_eps
            self.k_norm = RMSNorm(head_dim, eps=1e-6)
        else:
            self.q_norm = self.k_norm = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """``x`` (batch, num_tokens, d_in); ``mask`` is True where a query must not see a key."""
        queries, keys, values = self.project_qkv(x, cos, sin)
        return self.attend(queries, keys, values, mask)

    def project_qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """Queries, keys and values, split into heads, QK-normed and rotated: each (batch, heads, tokens, head_dim)."""
        b, num_tokens, _ = x.shape
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(b, num_tokens, self.num_kv_groups, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_kv_groups, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            queries = self.q_norm(queries)
            keys = self.k_norm(keys)
        return apply_rope(queries, cos, sin), apply_rope(keys, cos, sin), values

    def attend(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        """Masked softmax attention; ``keys`` and ``values`` may hold more positions than ``queries`` (a cache)."""
        b, _, num_tokens, _ = queries.shape
        # each key/value head serves group_size consecutive query heads
        keys = keys.repeat_interleave(self.group_size, dim=1)  # (b, num_heads, num_keys, head_dim)
        values = values.repeat_interleave(self.group_size, dim=1)
        attn_scores = queries @ keys.transpose(2, 3)  # (b, num_heads, num_tokens, num_keys)
        attn_scores = attn_scores.masked_fill(mask, -torch.inf)
        attn_weights = torch.softmax(attn_scores / self.head_dim**0.5, dim=-1)
        context = (attn_weights @ values).transpose(1, 2).reshape(b, num_tokens, self.d_out)
        return self.out_proj(context)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + att(norm1(x))``, then ``x + ff(norm2(x))``; ``ff`` is a mixture of experts when
    the config has ``num_experts > 0``."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.att = GroupedQueryAttention(
            d_in=cfg["emb_dim"],
            num_heads=cfg["n_heads"],
            num_kv_groups=cfg["n_kv_groups"],
            head_dim=cfg["head_dim"],
            qk_norm=cfg["qk_norm"],
            dtype=cfg["dtype"],
        )
        self.ff = MoEFeedForward(cfg) if cfg.get("num_experts", 0) > 0 else FeedForward(cfg)
        self.norm1 = RMSNorm(cfg["emb_dim"], eps=1e-6)
        self.norm2 = RMSNorm(cfg["emb_dim"], eps=1e-6)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        x = self.att(x, mask, cos, sin)  # (batch, num_tokens, emb_dim)
        x = x + shortcut

        shortcut = x
        x = self.norm2(x)
        x = self.ff(x)
        return x + shortcut


class Qwen3Model(nn.Module):
    """Token embedding, ``n_layers`` transformer blocks, a final RMSNorm and the output head.

    There is no position embedding: RoPE rotates queries and keys inside attention, with the cosine and sine
    tables computed once here and shared by all blocks.
    """

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"], dtype=cfg["dtype"])
        # a ModuleList rather than nn.Sequential: each block also needs the mask and the RoPE tables
        self.trf_blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg["n_layers"]))
        self.final_norm = RMSNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False, dtype=cfg["dtype"])

        head_dim = cfg["head_dim"] if cfg["head_dim"] is not None else cfg["emb_dim"] // cfg["n_heads"]
        cos, sin = compute_rope_params(head_dim, theta_base=cfg["rope_base"], context_length=cfg["context_length"])
        # buffers move with model.to(device) but are not weights, so they stay out of the state dict
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.cfg = cfg

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        """Map token ids (batch, num_tokens) to next-token logits (batch, num_tokens, vocab_size)."""
        num_tokens = in_idx.shape[1]
        if num_tokens > self.cfg["context_length"]:
            raise ValueError(f"the input has {num_tokens} tokens but the model's context_length is "
                             f"{self.cfg['context_length']}; keep only the last {self.cfg['context_length']}")
        x = self.tok_emb(in_idx)  # (batch, num_tokens, emb_dim)
        mask = torch.triu(torch.ones(num_tokens, num_tokens, device=x.device, dtype=torch.bool), diagonal=1)
        for block in self.trf_blocks:
            x = block(x, mask, self.cos, self.sin)
        x = self.final_norm(x)
        return self.out_head(x)


# ---------------------------------------------------------------------------------- weights from Hugging Face


def _hf_names(model: Qwen3Model) -> dict[str, torch.Tensor]:
    """Each Hugging Face tensor name and the parameter of ``model`` it fills."""
    names = {"model.embed_tokens.weight": model.tok_emb.weight}
    for i, block in enumerate(model.trf_blocks):
        layer, att = f"model.layers.{i}", block.att
        names[f"{layer}.self_attn.q_proj.weight"] = att.W_query.weight
        names[f"{layer}.self_attn.k_proj.weight"] = att.W_key.weight
        names[f"{layer}.self_attn.v_proj.weight"] = att.W_value.weight
        names[f"{layer}.self_attn.o_proj.weight"] = att.out_proj.weight
        if att.q_norm is not None:
            names[f"{layer}.self_attn.q_norm.weight"] = att.q_norm.scale
            names[f"{layer}.self_attn.k_norm.weight"] = att.k_norm.scale
        names[f"{layer}.input_layernorm.weight"] = block.norm1.scale
        names[f"{layer}.post_attention_layernorm.weight"] = block.norm2.scale
        if isinstance(block.ff, MoEFeedForward):
            names[f"{layer}.mlp.gate.weight"] = block.ff.gate.weight  # the router
            for e in range(block.ff.num_experts):
                names[f"{layer}.mlp.experts.{e}.gate_proj.weight"] = block.ff.fc1[e].weight
                names[f"{layer}.mlp.experts.{e}.up_proj.weight"] = block.ff.fc2[e].weight
                names[f"{layer}.mlp.experts.{e}.down_proj.weight"] = block.ff.fc3[e].weight
        else:
            names[f"{layer}.mlp.gate_proj.weight"] = block.ff.fc1.weight
            names[f"{layer}.mlp.up_proj.weight"] = block.ff.fc2.weight
            names[f"{layer}.mlp.down_proj.weight"] = block.ff.fc3.weight
    names["model.norm.weight"] = model.final_norm.scale
    names["lm_head.weight"] = model.out_head.weight
    return names


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def load_weights_into_qwen(model: Qwen3Model, param_config: dict[str, Any], params: dict[str, torch.Tensor]) -> None:
    """Copy a Qwen3 or Qwen3-MoE checkpoint, as Hugging Face names its tensors, into ``model`` (in place).

    ``params`` maps names such as ``model.layers.0.self_attn.q_proj.weight`` to tensors (what
    :func:`download_from_huggingface_from_snapshots` returns). Without ``lm_head.weight`` the checkpoint ties the
    output head to the token embedding, and the head gets a copy of it. Every tensor of the checkpoint must fill a
    parameter with the same shape, and every parameter must be filled; otherwise nothing is copied and a
    ValueError names the tensors that do not fit.
    """
    if param_config["n_layers"] != len(model.trf_blocks):
        raise ValueError(f"param_config has {param_config['n_layers']} layers but the model has "
                         f"{len(model.trf_blocks)}; pass the config the model was built from")
    targets = _hf_names(model)
    tied = "lm_head.weight" not in params
    sources = {name: ("model.embed_tokens.weight" if name == "lm_head.weight" and tied else name) for name in targets}

    missing = [name for name, source in sources.items() if source not in params]
    # older checkpoints store RoPE's inverse frequencies, which the model computes itself
    unused = [name for name in params if name not in targets and not name.endswith("rotary_emb.inv_freq")]
    wrong = [f"{name} {tuple(params[source].shape)} vs model {tuple(targets[name].shape)}"
             for name, source in sources.items()
             if source in params and tuple(params[source].shape) != tuple(targets[name].shape)]
    if missing or unused or wrong:
        problems = [f"{label}: {_few(names)}" for label, names in
                    (("missing", missing), ("not in the model", unused), ("shape mismatch", wrong)) if names]
        raise ValueError("the checkpoint does not fit the model (" + "; ".join(problems) + "); build the model "
                         "from the config of this checkpoint, e.g. Qwen3Model(QWEN3_CONFIG_8B) for Qwen3-8B")

    with torch.no_grad():
        for name, param in targets.items():
            param.copy_(params[sources[name]])  # copy_ converts to the model's dtype and device


# ------------------------------------------------------------------------------------------------- tokenizer


class Qwen3Tokenizer:
    """Qwen3's byte-level BPE tokenizer (Hugging Face ``tokenizers`` library) with the chat format of the
    instruct models.

    With ``apply_chat_template`` (the default), :meth:`encode` wraps the text as one user message in ChatML:
    ``<|im_start|>user\\n{text}<|im_end|>\\n``. ``add_generation_prompt`` appends the header of the assistant's
    answer, ``<|im_start|>assistant\\n``; with ``add_thinking=False`` that header is followed by an empty
    ``<think>\\n\\n</think>\\n\\n`` block, so the model answers without reasoning first (``enable_thinking=False``
    in the official template). If ``tokenizer_file_path`` does not exist and ``repo_id`` is given, the file is
    downloaded from that Hugging Face repository. ``eos_token_id`` is ``<|im_end|>`` for a ``repo_id`` of an
    instruct model and ``<|endoftext|>`` otherwise; ``pad_token_id`` is ``<|endoftext|>``.
    """

    def __init__(self, tokenizer_file_path: str = "tokenizer.json", repo_id: str | None = None,
                 apply_chat_template: bool = True, add_generation_prompt: bool = False, add_thinking: bool = False):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ImportError("Qwen3Tokenizer needs the Hugging Face tokenizers library: pip install tokenizers") \
                from None
        self.apply_chat_template = apply_chat_template
        self.add_generation_prompt = add_generation_prompt
        self.add_thinking = add_thinking

        tok_file = Path(tokenizer_file_path)
        if not tok_file.is_file():
            if repo_id is None:
                raise FileNotFoundError(f"no tokenizer file at {tok_file}; pass repo_id (e.g. 'Qwen/Qwen3-0.6B') "
                                        "to download it, or the path of a Qwen3 tokenizer.json")
            tok_file = Path(download_from_huggingface(repo_id=repo_id, filename=tok_file.name,
                                                      local_dir=str(tok_file.parent)))
        self._tok = Tokenizer.from_file(str(tok_file))
        # the special tokens (<|endoftext|>, <|im_start|>, <think>, ...) are the file's added tokens
        self._special_to_id = {t.content: i for i, t in self._tok.get_added_tokens_decoder().items()}
        self.pad_token_id = self._special_to_id["<|endoftext|>"]
        is_instruct = repo_id is not None and "Base" not in repo_id
        self.eos_token_id = self._special_to_id["<|im_end|>" if is_instruct else "<|endoftext|>"]

    def encode(self, text: str, chat_wrapped: bool | None = None) -> list[int]:
        """Token ids of ``text``; ``chat_wrapped`` overrides ``apply_chat_template`` for this call.

        A text that is a single special token (surrounding whitespace aside) encodes to that token alone.
        """
        if chat_wrapped is None:
            chat_wrapped = self.apply_chat_template
        stripped = text.strip()
        if stripped in self._special_to_id:
            return [self._special_to_id[stripped]]
        if chat_wrapped:
            text = self._wrap_chat(text)
        # the tokenizers library matches special tokens first, then normalizes (NFC) and encodes the rest
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)

    def _wrap_chat(self, user_msg: str) -> str:
        text = f"<|im_start|>user\n{user_msg}<|im_end|>\n"
        if self.add_generation_prompt:
            text += "<|im_start|>assistant\n"
            if not self.add_thinking:
                text += "<think>\n\n</think>\n\n"  # an empty reasoning block: the model goes straight to the answer
        return text


# ------------------------------------------------------------------------------------------------- downloads


def _hub(what: str):
    """The huggingface_hub function ``what``, or an AssetUnavailableError that says how to install it."""
    try:
        import huggingface_hub
    except ImportError:
        raise AssetUnavailableError("downloading from the Hugging Face hub needs huggingface_hub: "
                                    "pip install huggingface_hub") from None
    return getattr(huggingface_hub, what)


def download_from_huggingface(repo_id: str, filename: str, local_dir: str, revision: str = "main") -> str:
    """Download ``filename`` of Hugging Face repository ``repo_id`` into ``local_dir``; return its path.

    A file already in ``local_dir`` is used as it is, without going online.
    """
    dest = Path(local_dir) / filename
    if dest.is_file():
        return str(dest)
    hf_hub_download = _hub("hf_hub_download")
    try:
        return str(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision, local_dir=local_dir))
    except Exception as exc:  # network and hub errors come in many types
        raise AssetUnavailableError(
            f"could not download {filename} from Hugging Face repo {repo_id} ({type(exc).__name__}); check the "
            f"connection and the repo name, or put the file at {dest} yourself"
        ) from exc


def download_from_huggingface_from_snapshots(repo_id: str, local_dir: str) -> dict[str, torch.Tensor]:
    """Download the whole repository ``repo_id`` into ``local_dir`` and return its safetensors weights as one
    dict (name -> tensor), whether the checkpoint is one file or sharded."""
    snapshot_download = _hub("snapshot_download")
    try:
        repo_dir = Path(snapshot_download(repo_id=repo_id, local_dir=local_dir))
    except Exception as exc:
        raise AssetUnavailableError(
            f"could not download Hugging Face repo {repo_id} ({type(exc).__name__}); check the connection and "
            f"the repo name, or download it yourself into {local_dir}"
        ) from exc
    from safetensors.torch import load_file

    index = repo_dir / "model.safetensors.index.json"
    if index.is_file():  # sharded: the index maps each tensor to its shard
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    elif (repo_dir / "model.safetensors").is_file():
        shards = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{repo_id} has neither model.safetensors nor model.safetensors.index.json")
    weights: dict[str, torch.Tensor] = {}
    for shard in shards:
        weights.update(load_file(repo_dir / shard))
    return weights
