"""Gated DeltaNet: linear attention whose memory is a fixed-size matrix, written with the gated delta rule.

Softmax attention keeps every key and value and compares each query with all of them. Linear attention
instead folds the past into one matrix per head, the state ``S`` (value_dim x key_dim): a token *writes*
``v kᵀ`` into it and a query *reads* ``S q``. The gated delta rule (Yang, Kautz and Hatamizadeh, 2024) makes
the write error-correcting and lets the model forget:

    S_t = α_t S_{t-1} (I - β_t k_t k_tᵀ) + β_t v_t k_tᵀ        o_t = S_t q_t

* ``α_t`` in (0, 1) decays the whole memory (the gate; ``log_alpha`` below is its log);
* ``β_t`` in (0, 1) is a write strength: the state first predicts the value stored under ``k_t``
  (``α_t S_{t-1} k_t``) and then moves that prediction a fraction ``β_t`` toward ``v_t`` (the delta rule).

Keys and queries are L2-normalised (so ``I - β k kᵀ`` never amplifies), and queries are scaled by
``key_dim ** -0.5``; the layer does both before calling the kernels here.

Two ways to compute the same thing:

* :func:`gated_delta_rule_recurrent`: token by token, what decoding does with a cached state;
* :func:`gated_delta_rule_chunked`: for a prompt. Inside a chunk of ``C`` tokens the delta-rule writes are
  coupled (each depends on the state the previous ones left), but they solve one unit lower-triangular
  ``C x C`` system (the WY/UT form), so a chunk costs a few matmuls; only the state passes from chunk to chunk.

:class:`GatedDeltaNet` is the whole layer as Qwen3-Next and Qwen3.5 use it: projections, a short causal
depthwise convolution over q/k/v, the delta rule over ``n_heads`` value heads (``n_qk_heads`` query/key heads
each serve a block of them, as in grouped-query attention), and a gated RMSNorm before the output projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .linear_state_cache import LinearAttentionCache
from .norms import RMSNorm


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``x / sqrt(sum(x²) + eps)`` over the last dimension (the eps inside the root, as the reference kernels)."""
    return x * torch.rsqrt(x.pow(2).sum(dim=-1, keepdim=True) + eps)


def _zero_state(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    b, h, _, dk = k.shape
    return torch.zeros(b, h, v.shape[-1], dk, dtype=torch.float32, device=k.device)


def gated_delta_rule_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_alpha: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gated delta rule one token at a time.

    ``q``, ``k`` (batch, heads, tokens, key_dim), ``v`` (batch, heads, tokens, value_dim), ``log_alpha`` and
    ``beta`` (batch, heads, tokens); ``state`` (batch, heads, value_dim, key_dim) or None for an empty memory.
    Returns the outputs (batch, heads, tokens, value_dim) in ``v``'s dtype and the final state (float32).
    """
    out_dtype = v.dtype
    q, k, v, log_alpha, beta = (x.float() for x in (q, k, v, log_alpha, beta))
    state = _zero_state(k, v) if state is None else state.float()
    outs = []
    for t in range(k.shape[2]):
        k_t, v_t = k[:, :, t], v[:, :, t]  # (batch, heads, key_dim), (batch, heads, value_dim)
        state = state * log_alpha[:, :, t, None, None].exp()  # forget
        predicted = torch.einsum("bhvk,bhk->bhv", state, k_t)  # what the memory returns for k_t now
        correction = beta[:, :, t, None] * (v_t - predicted)  # the delta rule: write only the error
        state = state + torch.einsum("bhv,bhk->bhvk", correction, k_t)
        outs.append(torch.einsum("bhvk,bhk->bhv", state, q[:, :, t]))
    out = torch.stack(outs, dim=2) if outs else v.new_zeros(v.shape)
    return out.to(out_dtype), state


def gated_delta_rule_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_alpha: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same outputs and final state as :func:`gated_delta_rule_recurrent`, a chunk of tokens at a time.

    Within a chunk, with ``γ_r`` the product of the ``α`` from the chunk start to position ``r`` and ``S₀``
    the state entering the chunk, the value each token actually writes is
    ``u_r = β_r (v_r - γ_r S₀ k_r - Σ_{i<r} (γ_r/γ_i)(k_rᵀk_i) u_i)``: a unit lower-triangular system
    ``(I + A) U = β V - (β γ K) S₀ᵀ``, solved once per chunk for both right-hand sides. Then
    ``o_r = γ_r S₀ q_r + Σ_{i<=r} (γ_r/γ_i)(q_rᵀk_i) u_i`` and ``S_C = γ_C S₀ + Σ_i (γ_C/γ_i) u_i k_iᵀ``.
    """
    out_dtype = v.dtype
    b, h, t, dk = k.shape
    dv = v.shape[-1]
    q, k, v, log_alpha, beta = (x.float() for x in (q, k, v, log_alpha, beta))
    state = _zero_state(k, v) if state is None else state.float()
    # pad to whole chunks with tokens that change nothing: zero keys and values, β = 0, α = 1
    pad = -t % chunk_size
    if pad:
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        log_alpha, beta = (F.pad(x, (0, pad)) for x in (log_alpha, beta))
    n = (t + pad) // chunk_size
    # (batch, heads, chunks, chunk_size, dim)
    q, k, v = (x.reshape(b, h, n, chunk_size, -1) for x in (q, k, v))
    beta = beta.reshape(b, h, n, chunk_size)
    log_gamma = log_alpha.reshape(b, h, n, chunk_size).cumsum(dim=-1)  # log γ_r within each chunk

    causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=k.device).tril()
    # decay[r, i] = γ_r / γ_i for i <= r; masked before exp, where the difference could overflow
    decay = (log_gamma[..., :, None] - log_gamma[..., None, :]).masked_fill(~causal, float("-inf")).exp()
    kk = (k @ k.transpose(-1, -2)) * decay  # (batch, heads, chunks, C, C)
    system = torch.eye(chunk_size, device=k.device) + (beta[..., :, None] * kk).tril(-1)  # I + A
    gamma = log_gamma.exp()
    # U = u - w S₀ᵀ: u and w (the WY form) depend only on the chunk, not on the state entering it
    u = torch.linalg.solve_triangular(system, beta[..., None] * v, upper=False, unitriangular=True)
    w = torch.linalg.solve_triangular(system, (beta * gamma)[..., None] * k, upper=False, unitriangular=True)
    scores = (q @ k.transpose(-1, -2)) * decay  # causal within the chunk (decay is 0 above the diagonal)
    q_decayed = q * gamma[..., None]  # γ_r q_r reads the state entering the chunk
    k_to_end = k * (log_gamma[..., -1:] - log_gamma).exp()[..., None]  # (γ_C / γ_i) k_i
    chunk_decay = log_gamma[..., -1].exp()[..., None, None]  # γ_C: (batch, heads, chunks, 1, 1)

    outs = []
    for c in range(n):
        written = u[:, :, c] - w[:, :, c] @ state.transpose(-1, -2)  # (batch, heads, C, value_dim)
        outs.append(q_decayed[:, :, c] @ state.transpose(-1, -2) + scores[:, :, c] @ written)
        state = state * chunk_decay[:, :, c] + written.transpose(-1, -2) @ k_to_end[:, :, c]
    out = torch.stack(outs, dim=2).reshape(b, h, n * chunk_size, dv)[:, :, :t]
    return out.to(out_dtype), state


class GatedRMSNorm(nn.Module):
    """``RMSNorm(x) * silu(z)``: the output gate of a gated DeltaNet layer, per value head."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return (self.norm(x) * F.silu(z.float())).to(x.dtype)


class GatedDeltaNet(nn.Module):
    """A gated DeltaNet token mixer: ``x`` (batch, tokens, d_in) -> (batch, tokens, d_in).

    Per token: ``W_qkv`` gives q, k, v (all query/key heads, then all value heads), a causal depthwise
    convolution of width ``conv_kernel`` mixes each channel with the previous tokens, SiLU; ``W_beta`` gives
    ``β = sigmoid(.)`` and ``W_alpha`` the decay ``log α = -exp(A_log) * softplus(. + dt_bias)`` per value
    head; ``W_z`` gives the output gate. The delta rule's outputs go through :class:`GatedRMSNorm` and
    ``out_proj``.
    """

    def __init__(
        self,
        d_in: int,
        n_heads: int,
        n_qk_heads: int,
        qk_head_dim: int,
        v_head_dim: int,
        *,
        conv_kernel: int = 4,
        norm_eps: float = 1e-6,
        chunk_size: int = 64,
    ) -> None:
        super().__init__()
        if n_heads % n_qk_heads:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_qk_heads ({n_qk_heads})")
        self.n_heads, self.n_qk_heads = n_heads, n_qk_heads
        self.qk_head_dim, self.v_head_dim = qk_head_dim, v_head_dim
        self.chunk_size = chunk_size
        self.key_dim, self.value_dim = n_qk_heads * qk_head_dim, n_heads * v_head_dim
        self.conv_dim = 2 * self.key_dim + self.value_dim
        self.W_qkv = nn.Linear(d_in, self.conv_dim, bias=False)
        self.W_z = nn.Linear(d_in, self.value_dim, bias=False)
        self.W_beta = nn.Linear(d_in, n_heads, bias=False)
        self.W_alpha = nn.Linear(d_in, n_heads, bias=False)
        # depthwise (one filter per channel) and unpadded: forward prepends the previous conv_kernel - 1 inputs
        self.conv = nn.Conv1d(self.conv_dim, self.conv_dim, conv_kernel, groups=self.conv_dim, bias=False)
        self.A_log = nn.Parameter(torch.zeros(n_heads))
        self.dt_bias = nn.Parameter(torch.ones(n_heads))
        self.out_norm = GatedRMSNorm(v_head_dim, eps=norm_eps)
        self.out_proj = nn.Linear(self.value_dim, d_in, bias=False)

    @property
    def conv_kernel(self) -> int:
        return self.conv.kernel_size[0]

    def forward(
        self,
        x: torch.Tensor,
        cache: LinearAttentionCache | None = None,
        layer: int = 0,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """With a ``cache``, ``x`` holds only the new tokens: the layer continues from the cached conv inputs
        and state and stores its new ones. ``attention_mask`` (batch, tokens), 0 = left padding, zeroes the
        padding's inputs so that it writes nothing into the state."""
        b, t, _ = x.shape
        if attention_mask is not None:
            x = x * attention_mask[:, :, None].to(x.dtype)
        qkv = self.W_qkv(x).transpose(1, 2)  # (batch, conv_dim, tokens)
        past = cache.conv_states[layer] if cache is not None else qkv.new_zeros(b, self.conv_dim, self.conv_kernel - 1)
        qkv = torch.cat([past.to(qkv.dtype), qkv], dim=-1)  # (batch, conv_dim, kernel - 1 + tokens)
        if cache is not None:
            cache.conv_states[layer] = qkv[:, :, qkv.shape[-1] - (self.conv_kernel - 1) :]
        qkv = F.silu(self.conv(qkv)).transpose(1, 2)  # (batch, tokens, conv_dim)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.value_dim], dim=-1)
        # (batch, tokens, heads * dim) -> (batch, heads, tokens, dim)
        q = q.reshape(b, t, self.n_qk_heads, self.qk_head_dim).transpose(1, 2)
        k = k.reshape(b, t, self.n_qk_heads, self.qk_head_dim).transpose(1, 2)
        v = v.reshape(b, t, self.n_heads, self.v_head_dim).transpose(1, 2)
        q = l2_normalize(q.float()) * self.qk_head_dim**-0.5
        k = l2_normalize(k.float())
        if self.n_heads != self.n_qk_heads:
            # each query/key head serves a contiguous block of value heads
            q = q.repeat_interleave(self.n_heads // self.n_qk_heads, dim=1)
            k = k.repeat_interleave(self.n_heads // self.n_qk_heads, dim=1)
        beta = torch.sigmoid(self.W_beta(x)).transpose(1, 2)  # (batch, heads, tokens)
        log_alpha = -self.A_log.float().exp() * F.softplus(self.W_alpha(x).float() + self.dt_bias.float())
        log_alpha = log_alpha.transpose(1, 2)  # (batch, heads, tokens)

        state = cache.recurrent_states[layer] if cache is not None else None
        if cache is not None and t == 1:
            out, state = gated_delta_rule_recurrent(q, k, v, log_alpha, beta, state)
        else:
            out, state = gated_delta_rule_chunked(q, k, v, log_alpha, beta, state, chunk_size=self.chunk_size)
        if cache is not None:
            cache.recurrent_states[layer] = state

        out = out.transpose(1, 2)  # (batch, tokens, heads, v_head_dim)
        z = self.W_z(x).view(b, t, self.n_heads, self.v_head_dim)
        out = self.out_norm(out.to(x.dtype), z).reshape(b, t, self.value_dim)
        return self.out_proj(out)
