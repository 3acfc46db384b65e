"""Concept figure of the OLMo 3 notebook. Run ``make figures`` (or this script) to redraw it into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main


def _placement(ax, x: float, title: str, rows: list[tuple[str, str]], note: str, *, highlight: bool) -> None:
    """One sub-layer's path from the residual stream and back: ``rows`` top to bottom as (text, colour)."""
    w, h, gap = 2.3, 0.42, 0.18
    label(ax, x + 0.9, 4.15, title, color="accent" if highlight else "edge", fontsize=10)
    arrow(ax, (x - 0.25, 1.5), (x - 0.25, 3.8))  # the residual stream
    y = 3.15
    arrow(ax, (x - 0.25, y + h / 2 + 0.25), (x + 0.3, y + h / 2 + 0.25), color="muted")
    for i, (text, color) in enumerate(rows):
        box(ax, x + 0.3, y, w, h, text, color=color, fontsize=8.5,
            edge="accent" if highlight and color == "norm" else None)
        if i < len(rows) - 1:
            arrow(ax, (x + 0.3 + w / 2, y), (x + 0.3 + w / 2, y - gap))
        y -= h + gap
    y_add = y + h + gap + h / 2
    arrow(ax, (x + 0.3, y_add), (x - 0.2, y_add), color="accent")
    label(ax, x + 0.05, y_add + 0.17, "+", color="accent", fontsize=12)
    label(ax, x + 1.2, 1.1, note, fontsize=8.5)


def norm_placement() -> Figure:
    """Pre-norm (Llama), sandwich (Gemma 3) and post-norm (OLMo 2/3): where one sub-layer's norms sit; and QK-norm
    per head against over the whole projection."""
    fig, ax = canvas(12.4, 4.5)
    _placement(ax, 0.6, "pre-norm (GPT-2, Llama)", [("RMSNorm", "norm"), ("attention or MLP", "attention")],
               "x + f(norm(x))", highlight=False)
    _placement(ax, 3.9, "sandwich (Gemma 3)", [("RMSNorm", "norm"), ("attention or MLP", "attention"),
                                               ("RMSNorm", "norm")], "x + norm(f(norm(x)))", highlight=False)
    _placement(ax, 7.2, "post-norm (OLMo 2, OLMo 3)", [("attention or MLP", "attention"), ("RMSNorm", "norm")],
               "x + norm(f(x)): the update is normalized,\nthe stream itself never", highlight=True)
    label(ax, 11.1, 4.15, "QK-norm", color="edge", fontsize=10)
    box(ax, 10.25, 2.65, 1.9, 1.1, "Qwen3, Gemma 3:\nRMSNorm over\neach head (128)", color="norm", fontsize=8.5)
    box(ax, 10.25, 1.0, 1.9, 1.3, "OLMo 3:\nRMSNorm over all\nheads at once\n(32 x 128 = 4096)", color="norm",
        fontsize=8.5, edge="accent")
    label(ax, 11.2, 0.45, "before RoPE,\nfor queries and keys", fontsize=8.5)
    return fig


FIGURES = {"norm_placement.svg": norm_placement}

if __name__ == "__main__":
    main(FIGURES, __file__)
