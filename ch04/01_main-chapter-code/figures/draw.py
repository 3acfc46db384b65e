"""Concept figures of chapter 4. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

from matplotlib.patches import Circle

from llms_from_scratch.plotting import COLORS, Figure, arrow, box, canvas, grid, label, main


def transformer_block() -> Figure:
    """Pre-norm transformer block: two sub-layers, each wrapped by layer norm, dropout and a shortcut."""
    fig, ax = canvas(7.4, 8.2)
    cx, w = 2.0, 3.0
    layers = [(0.4, "input (b, T, emb_dim)", "text"), (1.3, "LayerNorm 1", "norm"),
              (2.1, "masked multi-head attention", "attention"), (2.9, "dropout", "neutral"),
              (4.0, "LayerNorm 2", "norm"), (4.8, "feed forward (GELU)", "ffn"),
              (5.6, "dropout", "neutral"), (6.9, "output (b, T, emb_dim)", "text")]
    for y, name, color in layers:
        box(ax, cx, y, w, 0.5, name, color=color, fontsize=10)
    for (y0, *_), (y1, *_) in zip(layers, layers[1:]):
        arrow(ax, (cx + w / 2, y0 + 0.52), (cx + w / 2, y1 - 0.02))
    # each shortcut branches off the main path before the norm and rejoins it, by addition, after the dropout
    mid, right = cx + w / 2, cx + w + 0.45
    for y_add, y_from, tag in [(3.6, 1.1, "shortcut 1"), (6.3, 3.88, "shortcut 2")]:
        ax.add_patch(Circle((mid, y_add), 0.16, facecolor="white", edgecolor=COLORS["edge"], linewidth=1.1))
        ax.text(mid, y_add, "+", ha="center", va="center", fontsize=12)
        ax.plot([mid, right, right], [y_from, y_from, y_add], color=COLORS["accent"], linewidth=1.2)
        ax.plot([mid], [y_from], "o", color=COLORS["accent"], markersize=4)
        arrow(ax, (right, y_add), (mid + 0.17, y_add), color="accent")
        label(ax, right + 0.15, (y_from + y_add) / 2, tag, color="accent", fontsize=9, ha="left")
    label(ax, cx - 0.1, 5.05, "emb_dim → 4·emb_dim\n→ emb_dim", fontsize=8, ha="right")
    label(ax, 3.5, 7.8, "repeated n_layers times; input and output have the same shape", fontsize=9)
    return fig


def gpt_stack() -> Figure:
    """The whole GPT: embeddings, a stack of transformer blocks, a final norm and the output head."""
    fig, ax = canvas(7.8, 8.6)
    cx, w = 1.2, 4.2
    steps = [(0.3, "token ids (b, T)", "ids"), (1.1, "token embedding + positional embedding", "embed"),
             (1.9, "dropout", "neutral"), (2.9, "transformer block 1", "attention"),
             (3.8, "⋮", "white"), (4.5, "transformer block n_layers", "attention"),
             (5.5, "final LayerNorm", "norm"), (6.3, "linear output head (emb_dim → vocab_size)", "ffn"),
             (7.3, "logits (b, T, vocab_size)", "text")]
    for y, name, color in steps:
        box(ax, cx, y, w, 0.5, name, color=color, fontsize=9 if len(name) > 30 else 10,
            edge="white" if name == "⋮" else None)
    for (y0, *_), (y1, *_) in zip(steps, steps[1:]):
        arrow(ax, (cx + w / 2, y0 + 0.52), (cx + w / 2, y1 - 0.02))
    shapes = [(1.35, "(b, T, emb_dim)"), (3.15, "(b, T, emb_dim)"), (4.75, "(b, T, emb_dim)")]
    for y, shape in shapes:
        label(ax, cx + w + 0.9, y, shape, fontsize=9)
    label(ax, cx + w + 0.9, 7.55, "one score per\nvocabulary entry", fontsize=9)
    label(ax, 3.3, 8.3, "GPT-2 small: emb_dim 768, 12 blocks, 12 heads, 50,257 tokens", fontsize=9)
    return fig


def generation_loop() -> Figure:
    """Greedy generation: run the model, take the last position's logits, pick the largest, append, repeat."""
    fig, ax = canvas(11.0, 3.4)
    tokens = ["Hello", ",", " I", " am"]
    for k, token in enumerate(tokens):
        box(ax, 0.2 + k * 0.75, 1.5, 0.7, 0.5, token, color="ids", fontsize=9)
    box(ax, 0.2 + 4 * 0.75, 1.5, 0.7, 0.5, "?", color="white", fontsize=11, edge="accent")
    box(ax, 4.2, 1.4, 1.4, 0.7, "GPTModel", color="attention", fontsize=10)
    arrow(ax, (3.7, 1.75), (4.18, 1.75))
    grid(ax, 6.1, 1.45, [[0.1, 0.3, 0.9, 0.2, 0.4, 0.1]], cell=0.3, cmap="Reds", vmin=0, vmax=1)
    arrow(ax, (5.62, 1.75), (6.05, 1.75))
    label(ax, 7.0, 2.25, "logits of the last position\n(vocab_size scores)", fontsize=8)
    box(ax, 8.4, 1.45, 1.1, 0.6, "argmax", color="ffn", fontsize=10)
    arrow(ax, (7.95, 1.75), (8.38, 1.75))
    box(ax, 9.9, 1.45, 0.9, 0.6, " a", color="ids", fontsize=10, edge="accent")
    arrow(ax, (9.52, 1.75), (9.88, 1.75))
    arrow(ax, (10.35, 1.43), (3.55, 1.48), color="accent", connection="arc3,rad=-0.25")
    label(ax, 6.9, 0.35, "append the new token and run again, with at most context_size tokens as input", color="accent",
          fontsize=9)
    return fig


FIGURES = {
    "transformer-block.svg": transformer_block,
    "gpt-stack.svg": gpt_stack,
    "generation-loop.svg": generation_loop,
}

if __name__ == "__main__":
    main(FIGURES, __file__)
