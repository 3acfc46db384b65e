"""Concept figure of the SmolLM3 notebook. Run ``make figures`` (or this script) to redraw it into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, box, canvas, label, main

N_LAYERS = 36


def nope_layers() -> Figure:
    """The 36 layers of SmolLM3 3B, every fourth without RoPE, and what each kind of layer scores."""
    fig, ax = canvas(12.0, 4.2)
    x0, y0, cell = 0.6, 2.2, 0.3
    label(ax, x0 + N_LAYERS * cell / 2, 3.85, "SmolLM3 3B, layers 0 ... 35: every fourth layer applies no RoPE",
          color="edge", fontsize=10)
    for i in range(N_LAYERS):
        nope = (i + 1) % 4 == 0
        box(ax, x0 + i * cell, y0, cell - 0.04, 1.2, "N" if nope else "R", color="neutral" if nope else "position",
            bold=nope, fontsize=8, edge="accent" if nope else None)
        if i % 4 == 3:
            label(ax, x0 + i * cell + cell / 2 - 0.02, y0 - 0.18, str(i), fontsize=7)
    box(ax, 0.9, 0.25, 4.9, 1.25, "R: RoPE layer (27 of 36)\nscore(m, n) = q_m . rotate(k_n, n - m)\n"
        "depends on the content and on the distance", color="position", fontsize=9)
    box(ax, 6.3, 0.25, 5.0, 1.25, "N: NoPE layer (9 of 36)\nscore(m, n) = q_m . k_n\n"
        "content only; order comes from the causal mask", color="neutral", fontsize=9, edge="accent")
    return fig


FIGURES = {"nope_layers.svg": nope_layers}

if __name__ == "__main__":
    main(FIGURES, __file__)
