"""Concept figures of the Qwen1 notebook. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main


def qwen1_checkpoint() -> Figure:
    """How Qwen1's checkpoint names map onto the Llama-style blocks: fused c_attn with bias, w2 as the gate."""
    fig, ax = canvas(12.0, 5.0)
    # attention: one fused weight and bias, split by rows
    label(ax, 2.9, 4.7, "attention: one fused c_attn", color="edge", fontsize=11, fontweight="bold")
    names = [("q rows", "W_query"), ("k rows", "W_key"), ("v rows", "W_value")]
    for k, (rows, target) in enumerate(names):
        y = 3.4 - k * 0.8
        box(ax, 0.3, y, 1.7, 0.7, rows, color="attention", fontsize=9)
        box(ax, 2.1, y, 0.55, 0.7, "b", color="ids", fontsize=9, edge="accent")
        box(ax, 3.6, y + 0.08, 2.0, 0.55, f"{target} + bias", color="attention", fontsize=9)
        arrow(ax, (2.68, y + 0.35), (3.58, y + 0.35))
    label(ax, 1.4, 1.2, "c_attn.weight (3 x 4096, 4096)\nand c_attn.bias (3 x 4096)", fontsize=8.5)
    box(ax, 0.3, 0.2, 2.35, 0.55, "c_proj (no bias)", color="ffn", fontsize=9)
    box(ax, 3.6, 0.2, 2.0, 0.55, "out_proj", color="ffn", fontsize=9)
    arrow(ax, (2.68, 0.47), (3.58, 0.47))
    ax.plot([6.1, 6.1], [0.2, 4.8], color="#cccccc", lw=1)
    # MLP: w2 is the gate
    label(ax, 9.1, 4.7, "feed forward: c_proj(w1(x) * silu(w2(x)))", color="edge", fontsize=11, fontweight="bold")
    box(ax, 6.5, 2.2, 1.0, 0.6, "x (4096)", color="embed", fontsize=9)
    box(ax, 8.0, 3.3, 1.9, 0.6, "w2 -> fc1 (gate)", color="ffn", fontsize=9, edge="accent")
    box(ax, 8.0, 1.1, 1.9, 0.6, "w1 -> fc2 (up)", color="ffn", fontsize=9, edge="accent")
    box(ax, 10.3, 3.3, 0.9, 0.6, "SiLU", color="neutral", fontsize=9)
    box(ax, 10.3, 2.2, 0.9, 0.6, "\u00d7", color="neutral", fontsize=13)
    box(ax, 10.0, 0.2, 1.9, 0.55, "c_proj -> fc3", color="ffn", fontsize=9)
    arrow(ax, (7.52, 2.6), (7.98, 3.5))
    arrow(ax, (7.52, 2.4), (7.98, 1.4))
    arrow(ax, (9.92, 3.6), (10.28, 3.6))
    arrow(ax, (10.75, 3.28), (10.75, 2.82))
    arrow(ax, (9.92, 1.4), (10.4, 2.18))
    arrow(ax, (10.75, 2.18), (10.95, 0.77))
    label(ax, 7.9, 0.45, "config.json's intermediate_size\n22016 = 2 x the width 11008", fontsize=8.5, color="accent")
    return fig


FIGURES = {"qwen1_checkpoint.svg": qwen1_checkpoint}

if __name__ == "__main__":
    main(FIGURES, __file__)
