"""Concept figures of the Qwen3 notebook. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main


def _column(ax, x: float, w: float, rows: list[tuple[str, str, bool]], *, y0: float = 0.3, h: float = 0.48,
            gap: float = 0.2) -> list[float]:
    """Boxes stacked bottom to top, joined by arrows; ``rows`` holds ``(text, color, changed)``. Returns the ys."""
    ys = []
    for k, (text, color, changed) in enumerate(rows):
        y = y0 + k * (h + gap)
        box(ax, x, y, w, h, text, color=color, fontsize=9, edge="accent" if changed else None)
        if k:
            arrow(ax, (x + w / 2, y - gap + 0.01), (x + w / 2, y - 0.01))
        ys.append(y)
    return ys


def gpt_vs_qwen3() -> Figure:
    """Chapter 4's GPT-2 block next to Qwen3-0.6B's, every part Qwen3 changes outlined in red."""
    fig, ax = canvas(11.6, 7.4)
    gpt = [("token ids", "ids", False), ("token embedding + learned\nposition embedding (1024 x 768)", "embed", False),
           ("LayerNorm", "norm", False), ("multi-head attention\n12 query heads, 12 key/value heads", "attention", False),
           ("dropout, then + shortcut", "neutral", False), ("LayerNorm", "norm", False),
           ("feed forward: GELU\n768 -> 3072 -> 768", "ffn", False), ("dropout, then + shortcut", "neutral", False),
           ("final LayerNorm", "norm", False), ("output head (its own matrix)", "ffn", False)]
    qwen = [("token ids (151,936-token BPE)", "ids", False), ("token embedding only\n(no position table)", "embed", True),
            ("RMSNorm", "norm", True), ("GQA (16 query / 8 key-value\nheads), QK-norm, RoPE", "attention", True),
            ("+ shortcut (no dropout)", "neutral", True), ("RMSNorm", "norm", True),
            ("feed forward: SwiGLU\n1024 -> 2 x 3072 -> 1024", "ffn", True), ("+ shortcut (no dropout)", "neutral", True),
            ("final RMSNorm", "norm", True), ("output head tied to the\ntoken embedding (0.6B-4B)", "ffn", True)]
    w = 3.5
    ys = _column(ax, 0.3, w, gpt)
    _column(ax, 7.7, w, qwen)
    label(ax, 0.3 + w / 2, ys[-1] + 0.9, "GPT-2 small (chapter 4)", color="edge", fontsize=11, fontweight="bold")
    label(ax, 7.7 + w / 2, ys[-1] + 0.9, "Qwen3-0.6B", color="edge", fontsize=11, fontweight="bold")
    # the repeated block, bracketed on both sides
    for x in (0.12, 7.52):
        ax.plot([x, x], [ys[2] - 0.05, ys[7] + 0.53], color="#8a8a8a", lw=1.2)
    label(ax, 0.05, (ys[2] + ys[7]) / 2 + 0.24, "x 12", ha="right", fontsize=9)
    label(ax, 7.45, (ys[2] + ys[7]) / 2 + 0.24, "x 28", ha="right", fontsize=9)
    notes = {1: "RoPE rotates queries and keys\ninside attention instead",
             2: "no mean, no shift; computed\nin float32, eps 1e-6",
             3: "a 2x smaller KV cache; RMSNorm over\neach 128-wide head keeps scores tame",
             6: "the SiLU branch gates\nthe linear branch",
             9: "one matrix serves twice:\n156M parameters saved"}
    for k, text in notes.items():
        label(ax, 5.75, ys[k] + 0.24, text, color="accent", fontsize=8.5)
    label(ax, 5.75, ys[-1] + 0.9, "red outline: what Qwen3 changes", color="accent", fontsize=9)
    return fig


FIGURES = {"gpt_vs_qwen3.svg": gpt_vs_qwen3}

if __name__ == "__main__":
    main(FIGURES, __file__)
