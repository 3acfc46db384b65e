"""Training FLOPs of the byte latent transformer, counted like :mod:`llms_from_scratch.flops` counts GPT's.

Only matrix multiplications count (2 FLOPs per multiply-add) and a training step costs 3x the forward pass. The
transformer blocks use the GPT formula of :func:`llms_from_scratch.flops.forward_flops` (full ``T x T``
attention, since the causal mask saves nothing in the kernel's arithmetic): the local encoder and decoder over the
``T`` bytes of a window, the latent transformer over its ``P`` patches. Add the projections into and out of the
latent width and the output head:

    encoder(T) + 2 * P * local_dim * latent_dim + latent(P) + 2 * T * latent_dim * local_dim
    + decoder(T) + 2 * T * local_dim * vocab_size

``P`` is counted per window (the patches that hold its input bytes), not the padded maximum of a batch: that is
the work the model needs; padding to the longest row is an implementation cost on top. The entropy model that
placed the patches is not counted here; its cost is one forward pass of a byte-level GPT over the data, once.
"""

from __future__ import annotations

from ..flops import forward_flops
from .model import BLTConfig


def _stack_flops(n_layers: int, emb_dim: int, n_tokens: int) -> int:
    if n_layers == 0:
        return 0
    cfg = {"emb_dim": emb_dim, "n_layers": n_layers, "vocab_size": 0, "context_length": n_tokens}
    return forward_flops(cfg, n_tokens).total


def blt_forward_flops(cfg: BLTConfig, n_bytes: int, n_patches: int) -> int:
    """Forward FLOPs of one window of ``n_bytes`` input bytes cut into ``n_patches`` patches."""
    if not 1 <= n_patches <= n_bytes:
        raise ValueError(f"a window of {n_bytes} bytes holds between 1 and {n_bytes} patches, got {n_patches}")
    t, p, dl, dg = n_bytes, n_patches, cfg.local_dim, cfg.latent_dim
    return (
        _stack_flops(cfg.encoder_layers, dl, t)
        + 2 * p * dl * dg
        + _stack_flops(cfg.latent_layers, dg, p)
        + 2 * t * dg * dl
        + _stack_flops(cfg.decoder_layers, dl, t)
        + 2 * t * dl * cfg.vocab_size
    )


def blt_training_flops(cfg: BLTConfig, n_bytes: int, patches_per_window: list[int]) -> int:
    """FLOPs of one training step (forward + backward) on windows of ``n_bytes`` with the given patch counts."""
    return 3 * sum(blt_forward_flops(cfg, n_bytes, p) for p in patches_per_window)
