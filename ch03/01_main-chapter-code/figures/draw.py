"""Concept figures of chapter 3. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import COLORS, Figure, arrow, box, canvas, grid, label, main

WORDS = ["Your", "journey", "starts", "with", "one", "step"]


def simple_attention() -> Figure:
    """Self-attention without weights, for one query: dot products -> softmax -> weighted sum of the inputs."""
    fig, ax = canvas(11.0, 4.6)
    xs = [0.9 + i * 1.05 for i in range(len(WORDS))]
    for x, word in zip(xs, WORDS):
        box(ax, x, 3.6, 0.95, 0.5, word, color="text", fontsize=10, edge="accent" if word == "journey" else None)
    label(ax, 0.45, 3.85, "x(i)")
    label(ax, 0.45, 2.7, "ω", fontsize=12)
    label(ax, 0.45, 1.6, "α", fontsize=12)
    scores = [0.95, 1.50, 1.48, 0.84, 0.71, 1.09]
    weights = [0.14, 0.24, 0.23, 0.13, 0.11, 0.15]
    for x, s, a in zip(xs, scores, weights):
        box(ax, x + 0.1, 2.45, 0.75, 0.5, f"{s:.2f}", color="attention", fontsize=10)
        box(ax, x + 0.1, 1.35, 0.75, 0.5, f"{a:.2f}", color="attention", fontsize=10)
        arrow(ax, (x + 0.47, 3.58), (x + 0.47, 2.97))
        arrow(ax, (x + 0.47, 2.43), (x + 0.47, 1.87))
    label(ax, 8.4, 2.7, "1. attention scores:\ndot product of the query\nx(2) with every input", ha="left", fontsize=9)
    label(ax, 8.4, 1.6, "2. attention weights:\nsoftmax, so they sum to 1", ha="left", fontsize=9)
    box(ax, 3.2, 0.15, 2.2, 0.55, "context vector z(2)", color="embed", fontsize=10)
    for x in xs:
        arrow(ax, (x + 0.47, 1.33), (4.3, 0.72), color="muted")
    label(ax, 8.4, 0.42, "3. weighted sum of all\ninputs x(i), weights α", ha="left", fontsize=9)
    return fig


def trainable_attention() -> Figure:
    """Self-attention with trainable weights: project to queries, keys, values; scale; softmax; weight the values."""
    fig, ax = canvas(11.0, 4.4)
    box(ax, 0.2, 1.75, 1.4, 0.9, "inputs X\n(T, d_in)", color="text")
    specs = [(3.3, "queries Q = X W_q", "(T, d_out)"), (2.0, "keys K = X W_k", "(T, d_out)"),
             (0.7, "values V = X W_v", "(T, d_out)")]
    for y, name, shape in specs:
        box(ax, 2.4, y, 2.2, 0.7, f"{name}\n{shape}", color="ffn", fontsize=10)
        arrow(ax, (1.62, 2.2), (2.38, y + 0.35))
    box(ax, 5.5, 2.65, 2.1, 0.7, "scores Q Kᵀ\n(T, T)", color="attention", fontsize=10)
    arrow(ax, (4.62, 3.65), (5.48, 3.1))
    arrow(ax, (4.62, 2.35), (5.48, 2.85))
    box(ax, 5.5, 1.35, 2.1, 0.8, "weights\nsoftmax(scores / √d_k)\n(T, T)", color="attention", fontsize=9)
    arrow(ax, (6.55, 2.63), (6.55, 2.17))
    box(ax, 8.5, 1.0, 2.2, 0.8, "context vectors\nweights · V\n(T, d_out)", color="embed", fontsize=10)
    arrow(ax, (7.62, 1.75), (8.48, 1.5))
    arrow(ax, (4.62, 1.05), (8.48, 1.2), connection="arc3,rad=0.12")
    label(ax, 5.5, 4.25, "W_q, W_k, W_v are trained; dividing by √d_k keeps the softmax from saturating", fontsize=9)
    return fig


def causal_mask() -> Figure:
    """Attention weights before and after the causal mask: each row only sees itself and earlier tokens."""
    fig, ax = canvas(11.0, 3.9)
    # the rounded weights of the chapter's SelfAttention_v2 (seed 789) on the six words, before and after masking
    full = [[0.19, 0.16, 0.17, 0.15, 0.17, 0.15], [0.20, 0.17, 0.17, 0.15, 0.17, 0.15],
            [0.20, 0.17, 0.17, 0.15, 0.17, 0.15], [0.19, 0.17, 0.17, 0.16, 0.17, 0.16],
            [0.18, 0.17, 0.17, 0.16, 0.17, 0.16], [0.19, 0.17, 0.17, 0.15, 0.17, 0.15]]
    masked = [[1.0, 0, 0, 0, 0, 0], [0.55, 0.45, 0, 0, 0, 0], [0.38, 0.31, 0.31, 0, 0, 0],
              [0.28, 0.25, 0.25, 0.23, 0, 0], [0.22, 0.20, 0.20, 0.19, 0.20, 0], [0.19, 0.17, 0.17, 0.15, 0.17, 0.15]]
    future = [(i, j) for i in range(6) for j in range(6) if j > i]
    cell = 0.42
    for x0, values, hidden, title in [(1.3, full, (), "all weights"), (6.9, masked, future, "causal: future masked,\nrows renormalised")]:
        grid(ax, x0, 0.6, values, cell=cell, cmap="Reds", vmin=0, vmax=1, masked=hidden, annotate=True)
        label(ax, x0 + 3 * cell, 0.25, title, color="edge", fontsize=10)
        for k, word in enumerate(WORDS):
            label(ax, x0 - 0.08, 0.6 + (5 - k) * cell + cell / 2, word, ha="right", fontsize=8)
            ax.text(x0 + k * cell + cell / 2, 0.6 + 6 * cell + 0.05, word, rotation=45, ha="left", va="bottom",
                    fontsize=8, color=COLORS["muted"])
    arrow(ax, (4.25, 1.85), (5.7, 1.85), color="accent")
    label(ax, 4.98, 2.15, "mask j > i", color="accent", fontsize=9)
    return fig


def multihead_split() -> Figure:
    """How one projection becomes several heads: view splits the last dimension, transpose moves heads forward."""
    fig, ax = canvas(12.4, 4.4)
    steps = [("queries = x @ W_q", "(b, T, d_out)\n(2, 6, 4)"),
             ("view", "(b, T, heads, head_dim)\n(2, 6, 2, 2)"),
             ("transpose(1, 2)", "(b, heads, T, head_dim)\n(2, 2, 6, 2)"),
             ("attention per head", "(b, heads, T, head_dim)\n(2, 2, 6, 2)"),
             ("transpose + view", "(b, T, d_out)\n(2, 6, 4)"),
             ("out_proj", "(b, T, d_out)\n(2, 6, 4)")]
    for k, (name, shape) in enumerate(steps):
        x = 0.2 + k * 2.05
        box(ax, x, 3.3, 1.85, 0.55, name, color="ffn" if k in (0, 5) else "attention", fontsize=9)
        label(ax, x + 0.92, 2.85, shape, color="edge", fontsize=8)
        if k:
            arrow(ax, (x - 0.18, 3.57), (x - 0.02, 3.57))
    # the split drawn as coloured columns: head 0 keeps columns 0-1, head 1 columns 2-3
    cell = 0.3
    full = [[0.1 * (i + j) for j in range(4)] for i in range(6)]
    grid(ax, 0.6, 0.3, full, cell=cell, cmap="Greens", vmin=0, vmax=1)
    label(ax, 1.2, 2.3, "one token per row,\nd_out = 4 columns", fontsize=8)
    ax.plot([0.6 + 2 * cell] * 2, [0.3, 0.3 + 6 * cell], color=COLORS["accent"], lw=2)
    arrow(ax, (2.0, 1.2), (4.4, 1.2), color="muted")
    for h, cmap in enumerate(["Greens", "Blues"]):
        x = 4.6 + h * 1.1
        grid(ax, x, 0.3, [row[2 * h:2 * h + 2] for row in full], cell=cell, cmap=cmap, vmin=0, vmax=1)
        label(ax, x + cell, 2.15, f"head {h}", fontsize=8, color="edge")
    label(ax, 9.6, 1.2, "each head attends with its\nown (T, head_dim) slice;\nthe outputs are concatenated\nback to d_out columns",
          fontsize=9)
    return fig


def rnn_bottleneck() -> Figure:
    """An RNN encoder squeezes the whole input into one hidden state, the only thing the decoder sees."""
    fig, ax = canvas(11.0, 3.6)
    source = ["Kannst", "du", "mir", "helfen", "..."]
    target = ["Can", "you", "help", "me", "..."]
    for k, word in enumerate(source):
        x = 0.3 + k * 1.0
        box(ax, x, 0.4, 0.9, 0.45, word, color="text", fontsize=9)
        box(ax, x + 0.1, 1.5, 0.7, 0.5, "h", color="embed", fontsize=10)
        arrow(ax, (x + 0.45, 0.87), (x + 0.45, 1.48))
        if k:
            arrow(ax, (x - 0.22, 1.75), (x + 0.08, 1.75))
    box(ax, 5.45, 1.35, 0.9, 0.8, "final\nstate", color="accent", fontsize=9)
    ax.patches[-1].set_alpha(0.35)
    arrow(ax, (5.1, 1.75), (5.43, 1.75))
    arrow(ax, (6.37, 1.75), (6.75, 1.75))
    for k, word in enumerate(target):
        x = 6.8 + k * 0.85
        box(ax, x, 1.5, 0.7, 0.5, "h", color="embed", fontsize=10)
        box(ax, x - 0.05, 2.6, 0.8, 0.45, word, color="ids", fontsize=9)
        arrow(ax, (x + 0.35, 2.02), (x + 0.35, 2.58))
        if k:
            arrow(ax, (x - 0.17, 1.75), (x - 0.02, 1.75))
    label(ax, 2.6, 2.5, "encoder: reads the input one token at a time", fontsize=9)
    label(ax, 8.6, 0.9, "decoder: sees only the final state", fontsize=9)
    label(ax, 5.9, 0.9, "the bottleneck", color="accent", fontsize=9)
    return fig


def stacked_heads() -> Figure:
    """MultiHeadAttentionWrapper: independent causal-attention heads whose outputs are concatenated."""
    fig, ax = canvas(10.0, 3.8)
    box(ax, 0.2, 1.4, 1.6, 0.9, "inputs\n(b, T, d_in)", color="text", fontsize=10)
    for k, y in enumerate([2.5, 0.3]):
        box(ax, 2.6, y, 2.6, 0.9, f"CausalAttention head {k + 1}\nown W_q, W_k, W_v", color="attention", fontsize=9)
        arrow(ax, (1.82, 1.85), (2.58, y + 0.45))
        grid(ax, 5.8, y + 0.15, [[0.2, 0.5], [0.4, 0.7]] if k == 0 else [[0.5, 0.5], [0.4, 0.4]], cell=0.3,
             cmap="Greens" if k == 0 else "Blues", vmin=0, vmax=1)
        label(ax, 6.1, y + 0.95 if k == 0 else y - 0.1, "(b, T, d_out)", fontsize=8)
        arrow(ax, (5.22, y + 0.45), (5.75, y + 0.45))
        arrow(ax, (6.45, y + 0.45), (7.35, 1.85), color="muted")
    # the concatenation keeps each head's columns side by side: head 1 first, then head 2
    grid(ax, 7.4, 1.55, [[0.2, 0.5], [0.4, 0.7]], cell=0.3, cmap="Greens", vmin=0, vmax=1)
    grid(ax, 8.0, 1.55, [[0.5, 0.5], [0.4, 0.4]], cell=0.3, cmap="Blues", vmin=0, vmax=1)
    label(ax, 8.0, 1.2, "torch.cat(dim=-1)\n(b, T, 2 · d_out)", color="edge", fontsize=9)
    return fig


FIGURES = {
    "simple-attention.svg": simple_attention,
    "trainable-attention.svg": trainable_attention,
    "causal-mask.svg": causal_mask,
    "multihead-split.svg": multihead_split,
    "rnn-bottleneck.svg": rnn_bottleneck,
    "stacked-heads.svg": stacked_heads,
}

if __name__ == "__main__":
    main(FIGURES, __file__)
