"""Concept figures of the Qwen3-MoE notebook. Run ``make figures`` (or this script) to redraw them here."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main

# router probabilities of one token over 8 experts (softmax of made-up scores), the top 2 kept
PROBS = [0.06, 0.31, 0.05, 0.09, 0.04, 0.22, 0.15, 0.08]
TOP = (1, 5)


def moe_routing() -> Figure:
    """One token through a mixture of experts: router scores, softmax, top-k, renormalised weighted sum."""
    fig, ax = canvas(12.0, 5.6)
    box(ax, 0.2, 2.45, 1.5, 0.7, "token vector\nx (emb_dim)", color="embed", fontsize=9)
    box(ax, 2.2, 2.45, 1.5, 0.7, "router\nLinear -> 8", color="ffn", fontsize=9)
    arrow(ax, (1.72, 2.8), (2.18, 2.8))
    # the probabilities as bars, one per expert
    x0, base, scale, step = 4.3, 1.2, 8.0, 0.42
    for e, p in enumerate(PROBS):
        kept = e in TOP
        box(ax, x0 + e * step, base, step - 0.08, p * scale, "", color="attention" if kept else "neutral",
            edge="accent" if kept else None)
        label(ax, x0 + e * step + (step - 0.08) / 2, base + p * scale + 0.15, f"{p:.2f}", fontsize=7,
              color="accent" if kept else "muted")
        label(ax, x0 + e * step + (step - 0.08) / 2, base - 0.2, str(e), fontsize=8)
    arrow(ax, (3.72, 2.8), (4.25, 2.8))
    label(ax, x0 + 4 * step, base - 0.55, "router probabilities: softmax over\n8 experts, keep the top 2", fontsize=9)
    # the experts: two run, six idle
    ex = 8.3
    for e in range(8):
        y = 4.7 - e * 0.55
        kept = e in TOP
        box(ax, ex, y, 1.5, 0.42, f"expert {e}" + (" (SwiGLU)" if kept else ""), fontsize=8,
            color="ffn" if kept else "neutral", edge="accent" if kept else None)
        if kept:
            arrow(ax, (x0 + e * step + 0.17, base + PROBS[e] * scale + 0.3), (ex - 0.02, y + 0.21), color="accent",
                  connection="arc3,rad=-0.15")
    box(ax, 10.3, 2.45, 1.5, 0.7, "y = 0.58 E1(x)\n  + 0.42 E5(x)", color="embed", fontsize=9)
    for e in TOP:
        arrow(ax, (ex + 1.52, 4.7 - e * 0.55 + 0.21), (10.28, 2.8), color="accent")
    label(ax, 11.05, 1.95, "weights renormalised:\n0.31 / 0.53, 0.22 / 0.53", fontsize=8)
    label(ax, 9.05, 0.6, "grey experts do no work for this token", fontsize=8)
    return fig


FIGURES = {"moe_routing.svg": moe_routing}

if __name__ == "__main__":
    main(FIGURES, __file__)
