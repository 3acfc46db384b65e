"""Concept figures of appendix E. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

from matplotlib.patches import Circle

from llms_from_scratch.plotting import COLORS, Figure, arrow, box, canvas, label, main


def lora_update() -> Figure:
    """A linear layer with LoRA: the frozen W beside the trainable low-rank path A (d_in x r) then B (r x d_out)."""
    fig, ax = canvas(11.0, 6.2)
    # the input x, shared by both paths
    box(ax, 0.3, 2.6, 1.5, 0.7, "x\n(…, d_in)", color="text", fontsize=10)
    # left path: the pretrained weight, a big square, frozen
    box(ax, 2.9, 3.4, 2.4, 2.4, "W\n(d_out × d_in)\n\nfrozen:\nd_in · d_out\nnumbers", color="neutral", fontsize=10)
    arrow(ax, (1.82, 3.1), (2.88, 4.2))
    # right path: A is tall and thin (d_in x r), B is short and wide (r x d_out)
    box(ax, 2.9, 0.2, 0.45, 2.4, "", color="embed")
    label(ax, 3.12, 1.4, "A", color="edge", fontsize=12, fontweight="bold")
    label(ax, 3.12, 0.0, "d_in × r", fontsize=9)
    box(ax, 4.0, 1.2, 2.4, 0.45, "B  (r × d_out)", color="embed", fontsize=10, bold=True)
    arrow(ax, (1.82, 2.8), (2.88, 1.9))
    arrow(ax, (3.37, 1.42), (3.98, 1.42))
    label(ax, 5.2, 0.85, "trainable: (d_in + d_out) · r numbers\nB starts at 0, so ΔW = 0 at first", fontsize=9,
          color="accent")
    box(ax, 6.9, 1.15, 0.9, 0.55, "× α", color="ffn", fontsize=10)
    arrow(ax, (6.42, 1.42), (6.88, 1.42))
    # the sum
    ax.add_patch(Circle((8.6, 3.0), 0.25, facecolor="white", edgecolor=COLORS["edge"], linewidth=1.1))
    ax.text(8.6, 3.0, "+", ha="center", va="center", fontsize=14)
    arrow(ax, (5.32, 4.2), (8.45, 3.2), connection="arc3,rad=-0.15")
    arrow(ax, (7.82, 1.42), (8.45, 2.8), connection="arc3,rad=0.15")
    box(ax, 9.2, 2.65, 1.6, 0.7, "y\n(…, d_out)", color="text", fontsize=10)
    arrow(ax, (8.87, 3.0), (9.18, 3.0))
    label(ax, 8.2, 6.0, "y = x Wᵀ + α · x A B", color="edge", fontsize=12)
    label(ax, 8.2, 5.55, "the update α · A B has rank ≤ r", fontsize=9)
    label(ax, 8.2, 5.2, "d_in = d_out = 768, r = 16: 24,576 instead of 589,824", fontsize=9)
    return fig


FIGURES = {"lora-update.svg": lora_update}

if __name__ == "__main__":
    main(FIGURES, __file__)
