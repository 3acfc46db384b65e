"""Concept figures of the DeepSeek-V3 notebook. Run ``make figures`` (or this script) to redraw them here."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main


def mla_cache() -> Figure:
    """What each token leaves in the KV cache: per-head keys and values (MHA) vs one latent + a RoPE key (MLA)."""
    fig, ax = canvas(12.0, 5.4)
    # left: multi-head attention caches every head's key and value
    label(ax, 2.8, 5.1, "multi-head attention (chapter 3)", color="edge", fontsize=11, fontweight="bold")
    box(ax, 0.2, 0.5, 1.3, 0.6, "token x\n7168", color="embed", fontsize=9)
    box(ax, 2.0, 0.5, 1.6, 0.6, "W_key, W_value", color="ffn", fontsize=9)
    arrow(ax, (1.52, 0.8), (1.98, 0.8))
    for h in range(4):
        y = 1.6 + h * 0.75
        box(ax, 4.0, y, 0.75, 0.55, f"k{h}", color="attention", fontsize=9, edge="accent")
        box(ax, 4.85, y, 0.75, 0.55, f"v{h}", color="attention", fontsize=9, edge="accent")
    label(ax, 4.8, 4.65, "... 128 heads", fontsize=9)
    arrow(ax, (2.8, 1.12), (3.98, 1.87), connection="arc3,rad=-0.2")
    label(ax, 4.8, 0.8, "cached: 128 x (192 + 128)\n= 40,960 numbers", color="accent", fontsize=9)
    # right: MLA caches one compressed latent and one shared RoPE key
    label(ax, 9.0, 5.1, "multi-head latent attention (DeepSeek-V3)", color="edge", fontsize=11, fontweight="bold")
    box(ax, 6.4, 0.5, 1.3, 0.6, "token x\n7168", color="embed", fontsize=9)
    box(ax, 8.1, 0.5, 1.5, 0.6, "W_kv_down", color="ffn", fontsize=9)
    arrow(ax, (7.72, 0.8), (8.08, 0.8))
    box(ax, 8.0, 1.7, 1.2, 0.55, "c_kv 512", color="embed", fontsize=9, edge="accent")
    box(ax, 9.3, 1.7, 1.0, 0.55, "k_rope 64", color="position", fontsize=9, edge="accent")
    arrow(ax, (8.85, 1.12), (8.6, 1.68))
    arrow(ax, (8.85, 1.12), (9.8, 1.68))
    label(ax, 10.45, 1.35, "cached: 576\nnumbers", color="accent", fontsize=9, ha="left")
    box(ax, 7.4, 2.75, 2.0, 0.55, "RMSNorm, W_kv_up", color="ffn", fontsize=9)
    arrow(ax, (8.6, 2.27), (8.4, 2.73))
    box(ax, 7.3, 3.8, 2.2, 0.55, "k_nope, v per head\n(rebuilt, not cached)", color="neutral", fontsize=8)
    arrow(ax, (8.4, 3.32), (8.4, 3.78))
    box(ax, 9.8, 3.8, 1.9, 0.55, "one RoPE key\nshared by all heads", color="neutral", fontsize=8)
    arrow(ax, (9.8, 2.27), (10.6, 3.78))
    ax.plot([6.1, 6.1], [0.3, 5.0], color="#cccccc", lw=1)
    return fig


FIGURES = {"mla_cache.svg": mla_cache}

if __name__ == "__main__":
    main(FIGURES, __file__)
