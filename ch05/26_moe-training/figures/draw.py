"""Concept figure of the MoE training notebook. Run ``make figures`` (or this script) to redraw it here."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main

# made-up expert loads of one training step (share of tokens per expert, top-2 of 4): expert 0 is overloaded
LOADS = [0.85, 0.55, 0.35, 0.25]
EVEN = 0.5  # top-2 of 4 experts: an even spread gives every expert half of the tokens


def _loads(ax, x0: float, y0: float, title: str) -> None:
    """Bars of LOADS with the even level dashed."""
    step, scale = 0.5, 1.6
    for e, share in enumerate(LOADS):
        over = share > EVEN
        box(ax, x0 + e * step, y0, step - 0.12, share * scale, "", color="attention" if over else "embed",
            edge="accent" if over else None)
        label(ax, x0 + e * step + (step - 0.12) / 2, y0 - 0.2, f"E{e}", fontsize=8)
    ax.plot([x0 - 0.1, x0 + 4 * step], [y0 + EVEN * scale] * 2, ls="--", lw=1, color="#8a8a8a")
    label(ax, x0 + 2 * step - 0.06, y0 + 1.7, title, fontsize=8.5)


def moe_balancing() -> Figure:
    """The auxiliary load-balancing loss (a gradient into the router) against DeepSeek-V3's bias step (no gradient)."""
    fig, ax = canvas(12.0, 5.6, ylim=6.2)
    # left: the auxiliary loss
    label(ax, 3.0, 5.9, "auxiliary loss (Switch Transformer, Qwen3-MoE)", color="edge", fontsize=10.5)
    box(ax, 0.2, 4.6, 1.6, 0.7, "router logits\nsoftmax -> p", color="ffn", fontsize=8.5)
    box(ax, 2.3, 4.6, 1.4, 0.7, "top-k\nexperts", color="ffn", fontsize=8.5)
    arrow(ax, (1.82, 4.95), (2.28, 4.95))
    _loads(ax, 3.9, 3.9, "load f_e per expert")
    box(ax, 0.5, 1.7, 5.0, 0.9, "loss = LM loss + α · E · Σ_e f_e · P_e\n(P_e: mean router probability of expert e)",
        color="attention", fontsize=8.5)
    arrow(ax, (4.6, 3.5), (3.6, 2.62))
    arrow(ax, (1.0, 2.62), (1.0, 4.58), color="accent", linestyle="--")
    label(ax, 1.55, 3.55, "gradient\nlowers P_e of\nbusy experts", fontsize=8, color="accent")
    label(ax, 3.0, 1.1, "balances by training the router; the extra loss\nalso pulls against the language-model loss",
          fontsize=8.5)
    # right: the bias step
    label(ax, 9.0, 5.9, "bias balancing (DeepSeek-V3)", color="edge", fontsize=10.5)
    box(ax, 6.3, 4.6, 1.6, 0.7, "sigmoid scores s\n+ bias b (choice)", color="ffn", fontsize=8.5)
    box(ax, 8.4, 4.6, 1.4, 0.7, "top-k\nexperts", color="ffn", fontsize=8.5)
    arrow(ax, (7.92, 4.95), (8.38, 4.95))
    _loads(ax, 10.0, 3.9, "load per expert")
    box(ax, 6.6, 1.7, 5.0, 0.9, "after each step, no gradient:\nb_e += γ · sign(mean load − load_e)",
        color="embed", fontsize=8.5)
    arrow(ax, (10.7, 3.5), (9.7, 2.62))
    arrow(ax, (7.1, 2.62), (7.1, 4.58), color="accent", linestyle="--")
    label(ax, 7.65, 3.55, "busy experts\nget chosen\nless often", fontsize=8, color="accent")
    label(ax, 9.1, 1.1, "the expert weights still come from the unbiased s:\nthe loss the model learns from is unchanged",
          fontsize=8.5)
    ax.plot([6.0, 6.0], [0.7, 6.1], color="#cccccc", lw=1)
    return fig


FIGURES = {"moe_balancing.svg": moe_balancing}

if __name__ == "__main__":
    main(FIGURES, __file__)
