"""Concept figures of the Mistral notebook. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

import matplotlib.pyplot as plt

from llms_from_scratch.plotting import COLORS, Figure, arrow, box, canvas, label, main

T, W = 10, 4  # tokens shown, window size


def _cell(ax, x: float, y: float, size: float, kind: str) -> None:
    """One mask cell: ``seen`` (red), ``future`` (hatched) or ``old`` (grey, dropped by the window)."""
    face = {"seen": COLORS["attention"], "future": "#dddddd", "old": "#bdbdbd"}[kind]
    ax.add_patch(plt.Rectangle((x, y), size, size, facecolor=face, edgecolor="white",
                               hatch="///" if kind == "future" else None))
    if kind == "seen":
        ax.add_patch(plt.Rectangle((x, y), size, size, facecolor="#e57373", edgecolor="white"))


def sliding_window() -> Figure:
    """Causal mask vs sliding-window mask (W = 4) on ten tokens, and the four-slot ring cache after them."""
    fig, ax = canvas(12.2, 5.0)
    cell = 0.34
    for panel, (x0, window, title) in enumerate([(0.6, None, "causal (chapter 3): every earlier token"),
                                                 (5.0, W, f"sliding window, W = {W}: the last {W} tokens")]):
        for i in range(T):  # query row i, key column j
            for j in range(T):
                kind = "future" if j > i else ("old" if window and i - j >= window else "seen")
                _cell(ax, x0 + j * cell, 0.6 + (T - 1 - i) * cell, cell, kind)
        label(ax, x0 + T * cell / 2, 0.6 + T * cell + 0.3, title, color="edge", fontsize=10)
        label(ax, x0 + T * cell / 2, 0.3, "key position 0 ... 9", fontsize=8)
        label(ax, x0 - 0.15, 0.6 + T * cell / 2, "query 0 ... 9", rotation=90, fontsize=8)
        if panel:
            label(ax, x0 + T * cell / 2, -0.05, "red: attended; hatched: future (causal mask); grey: dropped by the window", fontsize=8)
    # the ring buffer after tokens 0..9: slot p holds the newest token s with s % W == p
    x0, y0, slot = 9.3, 2.2, 0.62
    held = [max(s for s in range(T) if s % W == p) for p in range(W)]
    for p, token in enumerate(held):
        box(ax, x0 + p * slot, y0, slot - 0.04, 0.6, f"t{token}", color="attention", fontsize=10,
            edge="accent" if token == 6 else None)
        label(ax, x0 + p * slot + slot / 2 - 0.02, y0 - 0.2, f"slot {p}", fontsize=8)
    label(ax, x0 + W * slot / 2, y0 + 1.55, "ring KV cache (W slots)", color="edge", fontsize=10)
    label(ax, x0 + W * slot / 2, y0 + 1.05, "after tokens 0 ... 9", fontsize=9)
    box(ax, x0 + 2 * slot, y0 - 1.2, slot - 0.04, 0.5, "t10", color="text", fontsize=10)
    arrow(ax, (x0 + 2.5 * slot - 0.02, y0 - 0.68), (x0 + 2.5 * slot - 0.02, y0 - 0.3), color="accent")
    label(ax, x0 + W * slot / 2, y0 - 1.55, "token 10 goes to slot 10 % 4 = 2\nand overwrites token 6", fontsize=8,
          color="accent")
    return fig


FIGURES = {"sliding_window.svg": sliding_window}

if __name__ == "__main__":
    main(FIGURES, __file__)
