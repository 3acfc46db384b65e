"""Concept figures of the Qwen3-Next / Qwen3.5 notebook. Run ``make figures`` (or this script) to redraw them into
this folder."""

from __future__ import annotations

from llms_from_scratch.models import get_config
from llms_from_scratch.models.memory import kv_cache_bytes
from llms_from_scratch.plotting import COLORS, Figure, apply_style, arrow, box, canvas, label, main

N_LAYERS = 12  # three rounds of the 3:1 pattern


def hybrid_layers() -> Figure:
    """Top: the 3:1 pattern of DeltaNet and full-attention layers. Bottom: what each of the two token mixers
    computes, with its gate."""
    fig, ax = canvas(12.0, 7.0)
    x0, y0, cell = 2.1, 5.3, 0.65
    label(ax, 6.0, 6.75, "layers 0 ... 11 of 24-64: three gated DeltaNet layers (D), then one gated full-attention "
          "layer (A)", color="edge", fontsize=10)
    for i in range(N_LAYERS):
        full = (i + 1) % 4 == 0
        box(ax, x0 + i * cell, y0, cell - 0.08, 1.0, "A" if full else "D", color="attention" if full else "position",
            bold=full, fontsize=11, edge="accent" if full else None)
        label(ax, x0 + i * cell + cell / 2 - 0.04, y0 - 0.2, str(i), fontsize=7)
    label(ax, 6.0, 4.65, "every layer: x + mixer(RMSNorm(x)), then x + FFN(RMSNorm(x)); FFN = SwiGLU (dense sizes) "
          "or experts + gated shared expert", fontsize=9)
    # --- the DeltaNet layer
    w = 5.2
    label(ax, 0.3 + w / 2, 4.15, "D: gated DeltaNet (linear attention)", color="edge", fontsize=10)
    steps_d = [
        (3.45, "x -> q, k (16 heads of 128), v (16-64 heads of 128), z, beta, alpha", "ffn"),
        (2.8, "short causal convolution (4 tokens), SiLU; L2-normalize q, k", "ffn"),
        (2.15, "S <- aS + b(v - aSk)k^T   (a: decay, b: write strength)", "position"),
        (1.5, "o = S q, then RMSNorm(o) * SiLU(z)   (output gate)", "norm"),
        (0.85, "out_proj", "ffn"),
    ]
    for y, text, color in steps_d:
        box(ax, 0.3, y, w, 0.48, text, color=color, fontsize=8)
    for (ya, *_), (yb, *_) in zip(steps_d, steps_d[1:]):
        arrow(ax, (0.3 + w / 2, ya), (0.3 + w / 2, yb + 0.48))
    label(ax, 0.3 + w / 2, 0.45, "cache: the state S and the last 3 convolution inputs, fixed in size",
          color="accent", fontsize=9)
    # --- the gated attention layer
    x1 = 6.5
    label(ax, x1 + w / 2, 4.15, "A: gated full attention", color="edge", fontsize=10)
    steps_a = [
        (3.45, "x -> q and gate (one projection), k, v; QK-norm per head", "ffn"),
        (2.8, "partial RoPE: the first 64 of each head's 256 features", "position"),
        (2.15, "grouped-query softmax attention over every earlier token", "attention"),
        (1.5, "attn * sigmoid(gate)   (output gate, per feature)", "norm"),
        (0.85, "out_proj", "ffn"),
    ]
    for y, text, color in steps_a:
        box(ax, x1, y, w, 0.48, text, color=color, fontsize=8)
    for (ya, *_), (yb, *_) in zip(steps_a, steps_a[1:]):
        arrow(ax, (x1 + w / 2, ya), (x1 + w / 2, yb + 0.48))
    label(ax, x1 + w / 2, 0.45, "cache: keys and values of every token, growing with the text", color="accent",
          fontsize=9)
    return fig


def cache_memory() -> Figure:
    """Cache memory of Qwen3.5-27B against context length: the hybrid model (16 full-attention layers with a KV
    cache, 48 DeltaNet layers with fixed states) and the same model with all 64 layers full attention."""
    import matplotlib.pyplot as plt

    apply_style()
    cfg = get_config("qwen3.5-27b")
    all_full = cfg.replace(layer_types=None, linear_attn=None)
    lengths = [2**k for k in range(10, 19)]  # 1k ... 256k tokens
    gib = 2**30
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.plot(lengths, [kv_cache_bytes(all_full, n) / gib for n in lengths], marker="o",
            color=COLORS["muted"], label="all 64 layers full attention")
    ax.plot(lengths, [kv_cache_bytes(cfg, n) / gib for n in lengths], marker="o", color=COLORS["accent"],
            label="Qwen3.5: 16 full-attention + 48 DeltaNet layers")
    states = kv_cache_bytes(cfg, 0) / gib
    ax.axhline(states, color=COLORS["edge"], linestyle=":", linewidth=1)
    ax.text(lengths[0], states * 1.15, f"DeltaNet states: {states * 1024:.0f} MiB at any length", fontsize=9)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(lengths, [f"{n // 1024}k" for n in lengths])
    ax.set_xlabel("context length (tokens), batch 1, bf16 keys/values, float32 states")
    ax.set_ylabel("cache memory (GiB)")
    ax.set_title("Qwen3.5-27B: what the cache holds")
    ax.legend(frameon=False, fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    return fig


FIGURES = {"hybrid_layers.svg": hybrid_layers, "cache_memory.svg": cache_memory}

if __name__ == "__main__":
    main(FIGURES, __file__)
