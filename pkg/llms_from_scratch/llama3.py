"""Chapter 5 bonus: Llama 3.2 built from chapter 4's GPT, its tokenizer, and a loader for Hugging Face weights.

The model keeps GPT's pre-norm decoder and changes four parts: RMSNorm instead of LayerNorm, a SwiGLU
feed-forward network instead of the GELU MLP, rotary position embeddings (RoPE) instead of a learned position
table, and grouped-query attention, in which several query heads share one key/value head. There are no biases
and no dropout. ``ch05/07_gpt_to_llama/gpt-to-llama.ipynb`` develops this file step by step.

``Llama3Model`` writes attention out by hand; ``Llama3ModelFast`` computes it with PyTorch's
``scaled_dot_product_attention``. Both have the same parameter names, so one state dict loads into either.
``llms_from_scratch.kv_cache.llama3`` adds a KV cache to the same model.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import tiktoken
import torch
import torch.nn as nn
from tiktoken.load import load_tiktoken_bpe

__all__ = [
    "LLAMA32_CONFIG_1B",
    "LLAMA32_CONFIG_3B",
    "FeedForward",
    "GroupedQueryAttention",
    "TransformerBlock",
    "Llama3Model",
    "compute_rope_params",
    "rescale_theta",
    "apply_rope",
    "GroupedQueryAttentionFast",
    "TransformerBlockFast",
    "Llama3ModelFast",
    "Llama3Tokenizer",
    "ChatFormat",
    "clean_text",
    "assign",
    "load_weights_into_llama",
]

LLAMA32_CONFIG_1B: dict[str, Any] = {
    "vocab_size": 128_256,  # 128,000 BPE tokens plus 256 special tokens
    "context_length": 131_072,  # longest input the model was trained for (RoPE covers this many positions)
    "emb_dim": 2048,  # width of every token vector
    "n_heads": 32,  # query heads (head_dim = 2048 / 32 = 64)
    "n_layers": 16,  # transformer blocks
    "hidden_dim": 8192,  # width inside the feed-forward network
    "n_kv_groups": 8,  # key/value heads: each serves 32 / 8 = 4 query heads
    "rope_base": 500_000.0,  # RoPE's theta: larger than GPT-style 10,000, for longer contexts
    "dtype": torch.bfloat16,  # the released weights are bfloat16; half the memory of float32
    "rope_freq": {  # Llama 3.1/3.2 stretch RoPE's low frequencies from 8,192 to 131,072 positions
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_context_length": 8192,
    },
}

LLAMA32_CONFIG_3B: dict[str, Any] = {
    **LLAMA32_CONFIG_1B,
    "emb_dim": 3072,  # wider tokens
    "n_heads": 24,  # fewer but wider heads (head_dim = 3072 / 24 = 128)
    "n_layers": 28,  # deeper
    "rope_freq": dict(LLAMA32_CONFIG_1B["rope_freq"]),  # a copy, so editing one config leaves the other alone
}


# ---------------------------------------------------------------------------------------------------------------
# Rotary position embeddings
# ---------------------------------------------------------------------------------------------------------------


def compute_rope_params(head_dim: int, theta_base: float = 10_000, context_length: int = 4096,
                        freq_config: dict[str, float] | None = None,
                        dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines of the RoPE angles, each of shape (context_length, head_dim).

    Feature pair ``i`` of a head turns by ``position * theta_base ** (-2i / head_dim)`` radians. ``freq_config``
    applies Llama 3.1's scaling: frequencies whose wavelength exceeds ``original_context_length /
    low_freq_factor`` are divided by ``factor``, those shorter than ``original_context_length /
    high_freq_factor`` stay, and the band between blends the two.
    """
    if head_dim % 2 != 0:
        raise ValueError(f"RoPE rotates pairs of features, so head_dim must be even, got {head_dim}")
    inv_freq = 1.0 / theta_base ** (torch.arange(0, head_dim, 2, dtype=dtype) / head_dim)  # (head_dim // 2,)

    if freq_config is not None:
        factor = freq_config["factor"]
        low, high = freq_config["low_freq_factor"], freq_config["high_freq_factor"]
        original = freq_config["original_context_length"]
        wavelen = 2 * math.pi / inv_freq  # positions per full turn
        # 0 at the long-wavelength edge of the band, 1 at the short one; outside the band it is clamped
        smooth = ((original / wavelen - low) / (high - low)).clamp(0.0, 1.0)
        inv_freq = (1 - smooth) * inv_freq / factor + smooth * inv_freq

    positions = torch.arange(context_length, dtype=dtype)
    angles = positions[:, None] * inv_freq[None, :]  # (context_length, head_dim // 2)
    # the split-half layout: feature i pairs with feature i + head_dim // 2, so both halves share the angles
    angles = torch.cat([angles, angles], dim=1)  # (context_length, head_dim)
    return torch.cos(angles), torch.sin(angles)


def rescale_theta(theta_old: float, context_length_old: int, context_length_new: int) -> float:
    """RoPE's base ``theta`` for a model run at ``context_length_new`` instead of ``context_length_old`` tokens.

    The base grows or shrinks in proportion to the context, so the slowest feature pairs still make about the
    same fraction of a turn over the whole context: 500,000 at 131,072 tokens becomes 31,250 at 8,192.
    """
    return theta_old * context_length_new / context_length_old


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Rotate queries or keys ``x`` of shape (batch, num_heads, num_tokens, head_dim) by their positions.

    Token ``t`` of ``x`` sits at position ``offset + t``; a KV cache passes the number of tokens it holds.
    """
    num_tokens, head_dim = x.shape[-2:]
    if offset + num_tokens > cos.shape[0]:
        raise ValueError(f"positions up to {offset + num_tokens} need RoPE angles, but only {cos.shape[0]} were "
                         f"computed; build the model with a larger context_length or pass fewer tokens")
    x1, x2 = x[..., : head_dim // 2], x[..., head_dim // 2:]
    rotated = torch.cat([-x2, x1], dim=-1)  # each pair (a, b) becomes (-b, a): a quarter turn
    cos = cos[offset: offset + num_tokens]  # (num_tokens, head_dim), broadcast over batch and heads
    sin = sin[offset: offset + num_tokens]
    # cos and sin stay float32, so a bfloat16 x is rotated in float32 and only the result is rounded
    return (x * cos + rotated * sin).to(x.dtype)


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------


class FeedForward(nn.Module):
    """SwiGLU: ``fc3(silu(fc1(x)) * fc2(x))``, a SiLU-activated gate that scales the ``fc2`` projection."""

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.fc1 = nn.Linear(cfg["emb_dim"], cfg["hidden_dim"], bias=False, dtype=cfg["dtype"])  # gate
        self.fc2 = nn.Linear(cfg["emb_dim"], cfg["hidden_dim"], bias=False, dtype=cfg["dtype"])  # up
        self.fc3 = nn.Linear(cfg["hidden_dim"], cfg["emb_dim"], bias=False, dtype=cfg["dtype"])  # down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(nn.functional.silu(self.fc1(x)) * self.fc2(x))


class GroupedQueryAttention(nn.Module):
    """Causal self-attention in which ``num_heads`` query heads share ``num_kv_groups`` key/value heads.

    Query head ``h`` reads key/value head ``h // (num_heads // num_kv_groups)``. With ``num_kv_groups ==
    num_heads`` this is chapter 3's multi-head attention; with one group it is multi-query attention.
    """

    def __init__(self, d_in: int, d_out: int, num_heads: int, num_kv_groups: int, dtype: torch.dtype | None = None):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        if num_heads % num_kv_groups != 0:
            raise ValueError(f"num_heads ({num_heads}) must be divisible by num_kv_groups ({num_kv_groups})")
        self.d_out = d_out
        self.num_heads = num_heads
        self.num_kv_groups = num_kv_groups
        self.group_size = num_heads // num_kv_groups
        self.head_dim = d_out // num_heads

        # keys and values are only num_kv_groups heads wide: this is where GQA saves parameters and cache memory.
        # (Created before the queries, in the book's order, so a seed gives the book's random weights.)
        self.W_key = nn.Linear(d_in, num_kv_groups * self.head_dim, bias=False, dtype=dtype)
        self.W_value = nn.Linear(d_in, num_kv_groups * self.head_dim, bias=False, dtype=dtype)
        self.W_query = nn.Linear(d_in, d_out, bias=False, dtype=dtype)
        self.out_proj = nn.Linear(d_out, d_out, bias=False, dtype=dtype)

    def project(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                offset: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (b, num_heads, n, head_dim), keys and values (b, num_kv_groups, n, head_dim), RoPE applied."""
        b, num_tokens, _ = x.shape
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(b, num_tokens, self.num_kv_groups, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_kv_groups, self.head_dim).transpose(1, 2)
        # positions enter here and only here: queries and keys are rotated, values are not
        return apply_rope(queries, cos, sin, offset), apply_rope(keys, cos, sin, offset), values

    def attend(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        """Masked softmax attention of queries over keys, then the output projection: (b, n, d_out)."""
        b, _, num_tokens, _ = queries.shape
        # give every query head its own copy of its group's keys and values: [K1, K2] -> [K1, K1, K2, K2]
        keys = keys.repeat_interleave(self.group_size, dim=1)  # (b, num_heads, num_keys, head_dim)
        values = values.repeat_interleave(self.group_size, dim=1)

        attn_scores = queries @ keys.transpose(2, 3) / math.sqrt(self.head_dim)  # (b, num_heads, n, num_keys)
        attn_scores = attn_scores.masked_fill(mask, -torch.inf)
        # softmax in float32: in bfloat16 the small weights of long contexts would round away
        attn_weights = torch.softmax(attn_scores, dim=-1, dtype=torch.float32).to(values.dtype)

        context = (attn_weights @ values).transpose(1, 2)  # (b, n, num_heads, head_dim)
        return self.out_proj(context.reshape(b, num_tokens, self.d_out))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """``x``: (batch, num_tokens, d_in); ``mask``: True where a query must not see a key."""
        queries, keys, values = self.project(x, cos, sin)
        return self.attend(queries, keys, values, mask)


class TransformerBlock(nn.Module):
    """Pre-norm block as in GPT: ``x + att(norm1(x))``, then ``x + ff(norm2(x))``, with RMSNorm."""

    attention_class = GroupedQueryAttention  # TransformerBlockFast and the cached block swap in their own

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.att = self.attention_class(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            num_heads=cfg["n_heads"],
            num_kv_groups=cfg["n_kv_groups"],
            dtype=cfg["dtype"],
        )
        self.ff = FeedForward(cfg)
        # RMSNorm: x / sqrt(mean(x^2) + eps) * weight; unlike LayerNorm no mean is subtracted and no bias added
        self.norm1 = nn.RMSNorm(cfg["emb_dim"], eps=1e-5, dtype=cfg["dtype"])
        self.norm2 = nn.RMSNorm(cfg["emb_dim"], eps=1e-5, dtype=cfg["dtype"])

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.att(self.norm1(x), mask, cos, sin)  # (batch, num_tokens, emb_dim)
        x = x + shortcut

        shortcut = x
        x = self.ff(self.norm2(x))
        return x + shortcut


class Llama3Model(nn.Module):
    """Token embedding, ``n_layers`` blocks, a final RMSNorm and the output head; no position embedding."""

    block_class = TransformerBlock  # Llama3ModelFast and the cached model swap in their own

    def __init__(self, cfg: dict[str, Any]):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"], dtype=cfg["dtype"])
        # a ModuleList rather than chapter 4's Sequential: each block takes the mask and RoPE tables as well
        self.trf_blocks = nn.ModuleList([self.block_class(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = nn.RMSNorm(cfg["emb_dim"], eps=1e-5, dtype=cfg["dtype"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False, dtype=cfg["dtype"])

        # computed once and shared by every block; not saved in the state dict, since they follow from cfg
        cos, sin = compute_rope_params(
            head_dim=cfg["emb_dim"] // cfg["n_heads"],
            theta_base=cfg["rope_base"],
            context_length=cfg["context_length"],
            freq_config=cfg["rope_freq"],
        )
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.cfg = cfg

    def check_input(self, in_idx: torch.Tensor, start: int = 0) -> None:
        """Raise a clear error for ids that are not (batch, num_tokens) or reach past the context length."""
        if in_idx.dim() != 2:
            raise ValueError(f"expected token ids of shape (batch, num_tokens), got shape {tuple(in_idx.shape)}; "
                             f"add a batch dimension with in_idx.unsqueeze(0)")
        end, context_length = start + in_idx.shape[1], self.cfg["context_length"]
        if end > context_length:
            fix = "start again with a fresh KVCache" if start else f"keep only the last {context_length} tokens"
            raise ValueError(f"the input reaches position {end} but the model's context_length is {context_length};"
                             f" {fix}")

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        """Map token ids (batch, num_tokens) to next-token logits (batch, num_tokens, vocab_size)."""
        self.check_input(in_idx)
        num_tokens = in_idx.shape[1]
        x = self.tok_emb(in_idx)  # (batch, num_tokens, emb_dim)
        # True above the diagonal: token t may look at tokens 0..t only
        mask = torch.triu(torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=x.device), diagonal=1)
        for block in self.trf_blocks:
            x = block(x, mask, self.cos, self.sin)
        x = self.final_norm(x)
        return self.out_head(x)


# ---------------------------------------------------------------------------------------------------------------
# The same model with PyTorch's fused attention
# ---------------------------------------------------------------------------------------------------------------


class GroupedQueryAttentionFast(GroupedQueryAttention):
    """GroupedQueryAttention computed by ``scaled_dot_product_attention``, which picks a fused kernel
    (FlashAttention on recent GPUs in 16-bit precision) and never materialises the score matrix."""

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, num_tokens, _ = x.shape
        queries, keys, values = self.project(x, cos, sin)
        # enable_gqa: the kernel maps query head h to key/value head h // group_size itself, without copies
        context = nn.functional.scaled_dot_product_attention(queries, keys, values, is_causal=True,
                                                             enable_gqa=self.group_size > 1)
        context = context.transpose(1, 2).reshape(b, num_tokens, self.d_out)  # (b, n, d_out)
        return self.out_proj(context)


class TransformerBlockFast(TransformerBlock):
    """TransformerBlock with GroupedQueryAttentionFast; the causal mask lives inside the attention kernel."""

    attention_class = GroupedQueryAttentionFast

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.att(self.norm1(x), cos, sin)
        x = x + shortcut

        shortcut = x
        x = self.ff(self.norm2(x))
        return x + shortcut


class Llama3ModelFast(Llama3Model):
    """Llama3Model built from TransformerBlockFast: same parameters, same outputs up to rounding."""

    block_class = TransformerBlockFast

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        self.check_input(in_idx)
        x = self.tok_emb(in_idx)
        for block in self.trf_blocks:
            x = block(x, self.cos, self.sin)
        x = self.final_norm(x)
        return self.out_head(x)


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer and chat format
# ---------------------------------------------------------------------------------------------------------------

# how Llama 3 splits text before byte-pair merging (contractions, letter runs, up to 3 digits, punctuation, space)
_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Meta's names for the special tokens in use (Llama 3.1 / 3.2); the other ids up to 128255 are reserved
_NAMED_SPECIALS = {
    "<|begin_of_text|>": 128000,
    "<|end_of_text|>": 128001,
    "<|finetune_right_pad_id|>": 128004,
    "<|start_header_id|>": 128006,
    "<|end_header_id|>": 128007,
    "<|eom_id|>": 128008,  # end of message: the model waits for a tool's answer
    "<|eot_id|>": 128009,  # end of turn
    "<|python_tag|>": 128010,
}


class Llama3Tokenizer:
    """Meta's Llama 3 tokenizer: tiktoken BPE over the 128,000 ranks of ``tokenizer.model``, plus 256 specials.

    Get the file with ``llms_from_scratch.data.fetch("llama3-tokenizer")``.
    """

    def __init__(self, model_path: str | os.PathLike):
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"no Llama 3 tokenizer file at {model_path}; get it with "
                                    f"llms_from_scratch.data.fetch('llama3-tokenizer')")
        mergeable_ranks = load_tiktoken_bpe(str(model_path))
        num_ranks = len(mergeable_ranks)  # 128,000: the special tokens take the ids after the ranks

        self.special_tokens = dict(_NAMED_SPECIALS)
        reserved = (i for i in range(num_ranks, num_ranks + 256) if i not in _NAMED_SPECIALS.values())
        for number, token_id in enumerate(reserved):
            self.special_tokens[f"<|reserved_special_token_{number}|>"] = token_id
        self.special = self.special_tokens  # the book's later notebooks use this shorter name

        self.model = tiktoken.Encoding(
            name=Path(model_path).name,
            pat_str=_PATTERN,
            mergeable_ranks=mergeable_ranks,
            special_tokens=self.special_tokens,
        )

    def encode(self, text: str, bos: bool = False, eos: bool = False, allowed_special: Any = frozenset(),
               disallowed_special: Any = ()) -> list[int]:
        """Token ids of ``text``, optionally framed by ``<|begin_of_text|>`` and ``<|end_of_text|>``.

        Special-token strings inside ``text`` are encoded as ordinary text unless listed in
        ``allowed_special`` (or ``"all"``), so user input cannot forge a header.
        """
        tokens = [self.special_tokens["<|begin_of_text|>"]] if bos else []
        tokens += self.model.encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)
        if eos:
            tokens.append(self.special_tokens["<|end_of_text|>"])
        return tokens

    def decode(self, tokens: list[int]) -> str:
        return self.model.decode(tokens)


class ChatFormat:
    """Llama 3's chat layout: every turn is ``<|start_header_id|>role<|end_header_id|>\\n\\ncontent<|eot_id|>``.

    ``encode`` returns the prompt for one user message: begin-of-text, a system turn, the user turn and an
    open assistant header, after which the model writes its answer and closes it with ``<|eot_id|>``.
    """

    def __init__(self, tokenizer: Llama3Tokenizer, *, default_system: str = "You are a helpful assistant."):
        self.tokenizer = tokenizer
        self.default_system = default_system

    def encode_header(self, message: dict[str, str]) -> list[int]:
        """``<|start_header_id|>`` role ``<|end_header_id|>`` followed by two newlines."""
        special = self.tokenizer.special_tokens
        return ([special["<|start_header_id|>"]] + self.tokenizer.encode(message["role"])
                + [special["<|end_header_id|>"]] + self.tokenizer.encode("\n\n"))

    def encode_message(self, message: dict[str, str], allowed_special: Any = frozenset()) -> list[int]:
        """One complete turn: header, the stripped content, ``<|eot_id|>``."""
        content = self.tokenizer.encode(message["content"].strip(), allowed_special=allowed_special or frozenset())
        return self.encode_header(message) + content + [self.tokenizer.special_tokens["<|eot_id|>"]]

    def encode(self, user_message: str, system_message: str | None = None, allowed_special: Any = None) -> list[int]:
        system = self.default_system if system_message is None else system_message
        tokens = [self.tokenizer.special_tokens["<|begin_of_text|>"]]
        tokens += self.encode_message({"role": "system", "content": system}, allowed_special)
        tokens += self.encode_message({"role": "user", "content": user_message}, allowed_special)
        return tokens + self.encode_header({"role": "assistant", "content": ""})

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids)


def clean_text(text: str, header_end: str = "assistant<|end_header_id|>\n\n") -> str:
    """The answer after the first ``header_end`` in a decoded chat, stripped; ``text`` itself if it has none."""
    index = text.find(header_end)
    if index == -1:
        return text
    return text[index + len(header_end):].strip()


# ---------------------------------------------------------------------------------------------------------------
# Loading Hugging Face weights
# ---------------------------------------------------------------------------------------------------------------


def assign(left: torch.Tensor, right: Any, tensor_name: str = "unknown") -> torch.Tensor:
    """Copy ``right`` into the parameter ``left`` and return ``left``; the shapes must agree.

    Copying in place converts to ``left``'s dtype and device and allocates no second copy of the model.
    """
    right = torch.as_tensor(right)
    if left.shape != right.shape:
        raise ValueError(f"shape mismatch for {tensor_name}: the model expects {tuple(left.shape)}, the checkpoint "
                         f"has {tuple(right.shape)}; check that the config describes this checkpoint")
    with torch.no_grad():
        left.copy_(right)
    return left


# Hugging Face name inside layer {i} -> our parameter inside trf_blocks[i]
_LAYER_NAMES = {
    "self_attn.q_proj.weight": "att.W_query.weight",
    "self_attn.k_proj.weight": "att.W_key.weight",
    "self_attn.v_proj.weight": "att.W_value.weight",
    "self_attn.o_proj.weight": "att.out_proj.weight",
    "input_layernorm.weight": "norm1.weight",
    "post_attention_layernorm.weight": "norm2.weight",
    "mlp.gate_proj.weight": "ff.fc1.weight",
    "mlp.up_proj.weight": "ff.fc2.weight",
    "mlp.down_proj.weight": "ff.fc3.weight",
}


def load_weights_into_llama(model: Llama3Model, param_config: dict[str, Any], params: dict[str, Any]) -> None:
    """Copy a Hugging Face Llama state dict (``model.safetensors`` names) into ``model`` in place.

    Without ``lm_head.weight`` the checkpoint ties the output head to the token embedding (Llama 3.2, SmolLM2),
    and so does the model afterwards: ``out_head.weight`` becomes the same parameter as ``tok_emb.weight``.
    Every tensor of ``params`` must find its place (RoPE's ``inv_freq`` buffers excepted) and every shape must
    fit, so a checkpoint that does not match the config fails loudly instead of loading partly.
    """
    n_layers = param_config["n_layers"]
    if n_layers != len(model.trf_blocks):
        raise ValueError(f"param_config has n_layers={n_layers} but the model has {len(model.trf_blocks)} blocks; "
                         f"pass the config the model was built with")
    ours = dict(model.named_parameters(remove_duplicate=False))
    targets = {"model.embed_tokens.weight": "tok_emb.weight", "model.norm.weight": "final_norm.weight"}
    for i in range(n_layers):
        targets.update({f"model.layers.{i}.{hf}": f"trf_blocks.{i}.{name}" for hf, name in _LAYER_NAMES.items()})

    unused = sorted(k for k in params if k not in targets and k != "lm_head.weight" and not k.endswith("inv_freq"))
    missing = sorted(k for k in targets if k not in params)
    if unused or missing:
        problems = [f"{label} {names[:5]}" + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                    for label, names in (("missing", missing), ("unexpected", unused)) if names]
        raise ValueError(f"the checkpoint does not fit a {n_layers}-layer Llama: {'; '.join(problems)}; "
                         f"check that param_config describes this checkpoint")

    for hf_name, name in targets.items():
        assign(ours[name], params[hf_name], hf_name)

    if "lm_head.weight" in params:
        if model.out_head.weight is model.tok_emb.weight:  # tied by an earlier load: give the head its own tensor
            model.out_head.weight = nn.Parameter(torch.empty_like(model.tok_emb.weight))
        assign(model.out_head.weight, params["lm_head.weight"], "lm_head.weight")
    else:
        model.out_head.weight = model.tok_emb.weight  # weight tying: one matrix embeds tokens and scores them
