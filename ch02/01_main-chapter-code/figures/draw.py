"""Concept figures of chapter 2. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import COLORS, Figure, arrow, box, canvas, grid, label, main

TOKENS = ["This", "is", "an", "example", "."]
IDS = [1212, 318, 281, 1672, 13]  # GPT-2's ids for these tokens (tiktoken "gpt2")


def text_to_embeddings() -> Figure:
    """Text -> tokens -> token ids -> embedding vectors, one column per token."""
    fig, ax = canvas(10.2, 5.0)
    box(ax, 2.2, 4.3, 4.6, 0.55, '"This is an example."', color="text", fontsize=12)
    label(ax, 0.75, 4.57, "input text", ha="center")
    rows = [(3.35, "tokens", "text"), (2.25, "token ids", "ids")]
    xs = [1.9 + i * 1.3 for i in range(len(TOKENS))]
    for x in xs:
        arrow(ax, (4.5, 4.28), (x + 0.5, 3.92), color="muted")
    for y, name, color in rows:
        label(ax, 0.75, y + 0.27, name)
        for x, token, token_id in zip(xs, TOKENS, IDS):
            box(ax, x, y, 1.0, 0.55, token if color == "text" else str(token_id), color=color)
    for x in xs:
        arrow(ax, (x + 0.5, 3.33), (x + 0.5, 2.82))
        arrow(ax, (x + 0.5, 2.23), (x + 0.5, 1.72))
    label(ax, 0.75, 1.0, "embedding\nvectors")
    values = [[0.2, -0.5, 0.9], [0.7, 0.1, -0.3], [-0.6, 0.4, 0.2], [0.3, 0.8, -0.9], [-0.1, -0.7, 0.5]]
    for x, vector in zip(xs, values):
        grid(ax, x + 0.35, 0.75, [[v] for v in vector], cell=0.3, cmap="Greens", vmin=-1, vmax=1)
    label(ax, 9.25, 3.62, "split into\nwords and\npunctuation", fontsize=9)
    label(ax, 9.25, 2.52, "look up in\nthe vocabulary", fontsize=9)
    label(ax, 9.25, 1.2, "look up a row of\nthe embedding\nmatrix", fontsize=9)
    return fig


def sliding_window() -> Figure:
    """Input/target pairs: the target is the input shifted one token to the right; the stride moves the window."""
    words = ["In", "the", "heart", "of", "the", "city", "stood", "the", "old", "library", ","]
    fig, ax = canvas(11.0, 4.5)
    w, gap = 0.82, 0.06
    x0 = 0.9

    def row(y: float, start: int, count: int, color: str, name: str) -> None:
        label(ax, 0.45, y + 0.25, name, ha="center")
        for k in range(len(words)):
            inside = start <= k < start + count
            box(ax, x0 + k * (w + gap), y, w, 0.5, words[k], color=color if inside else "white",
                edge="edge" if inside else "muted", fontsize=10)

    row(3.35, 0, 4, "text", "x")
    row(2.65, 1, 4, "ids", "y")
    label(ax, x0, 4.1, "window 1: x = tokens 0-3, y = tokens 1-4 (the same window shifted by one)", ha="left", fontsize=9)
    row(1.25, 4, 4, "text", "x")
    row(0.55, 5, 4, "ids", "y")
    label(ax, 0.9, 0.2, "window 2 starts stride = 4 tokens later: no token is an input twice", ha="left", fontsize=9)
    arrow(ax, (x0 + 0.4, 2.5), (x0 + 4 * (w + gap) + 0.4, 1.82), color="accent", connection="arc3,rad=0.15")
    label(ax, x0 + 2.0 * (w + gap), 2.08, "stride", color="accent", fontsize=10)
    return fig


def token_plus_position() -> Figure:
    """Input embeddings = token embeddings + positional embeddings (same shape, added elementwise)."""
    fig, ax = canvas(10.0, 3.6)
    tok = [[0.9, -0.2, 0.4, 0.1], [-0.5, 0.7, 0.3, -0.8], [0.2, 0.1, -0.9, 0.6], [0.6, -0.7, 0.5, -0.2]]
    pos = [[0.1, 0.3, 0.0, -0.2], [0.2, -0.1, 0.3, 0.1], [-0.3, 0.2, 0.1, 0.3], [0.0, -0.3, 0.2, 0.2]]
    summed = [[a + b for a, b in zip(r1, r2)] for r1, r2 in zip(tok, pos)]
    cell = 0.42
    specs = [(0.4, tok, "Greens", "token embeddings\n(one row per token id)"),
             (3.6, pos, "Purples", "positional embeddings\n(one row per position)"),
             (6.8, summed, "Blues", "input embeddings\n(what the model sees)")]
    for x, values, cmap, title in specs:
        grid(ax, x, 0.8, values, cell=cell, cmap=cmap, vmin=-1.2, vmax=1.2, annotate=True, fmt="{:.1f}")
        label(ax, x + 2 * cell, 0.35, title, color="edge", fontsize=10)
    for k, word in enumerate(["In", "the", "heart", "of"]):
        label(ax, 0.2, 0.8 + (3 - k) * cell + cell / 2, word, ha="right", fontsize=9)
        label(ax, 3.4, 0.8 + (3 - k) * cell + cell / 2, f"pos {k}", ha="right", fontsize=9)
    ax.text(2.8, 1.64, "+", fontsize=26, ha="center", va="center", color=COLORS["edge"])
    ax.text(6.0, 1.64, "=", fontsize=26, ha="center", va="center", color=COLORS["edge"])
    label(ax, 5.0, 3.3, "shape (context_length, emb_dim) each; a batch adds a leading dimension", fontsize=9)
    return fig


def document_boundaries() -> Figure:
    """Independent texts joined into one training stream, separated by <|endoftext|>."""
    fig, ax = canvas(11.8, 2.4)
    docs = [("text 1", "... the last he painted, you know.", "text"), ("text 2", "Hello, do you like tea?", "ids"),
            ("text 3", "In the sunlit terraces ...", "embed")]
    x = 0.2
    for k, (name, words, color) in enumerate(docs):
        w = 0.085 * len(words) + 0.3
        box(ax, x, 1.0, w, 0.6, words, color=color, fontsize=10)
        label(ax, x + w / 2, 1.85, name)
        x += w + 0.1
        if k < len(docs) - 1:
            box(ax, x, 1.0, 1.45, 0.6, "<|endoftext|>", color="attention", fontsize=9, family="monospace")
            x += 1.55
    label(ax, 5.9, 0.45, "one stream of token ids; the marker tells the model that the next text is unrelated", fontsize=9)
    return fig


def embedding_lookup() -> Figure:
    """An embedding layer is a weight matrix; each token id selects one row of it."""
    fig, ax = canvas(9.0, 4.4)
    weights = [[0.34, -0.18, -0.17], [0.92, 1.58, 1.30], [1.28, -0.20, -0.16], [-0.40, 0.97, -1.15],
               [-1.16, 0.33, -0.63], [-2.84, -0.78, -1.41]]
    cell = 0.45
    grid(ax, 0.9, 0.9, weights, cell=cell, cmap="Greens", vmin=-3, vmax=2, annotate=True)
    for row in range(6):
        label(ax, 0.75, 0.9 + (5 - row) * cell + cell / 2, f"id {row}", ha="right", fontsize=9)
    label(ax, 0.9 + 1.5 * cell, 0.55, "embedding weight matrix\n(vocab_size = 6, emb_dim = 3)", color="edge", fontsize=9)
    ids = [2, 3, 5, 1]
    for k, token_id in enumerate(ids):
        y = 3.45 - k * 0.75
        box(ax, 3.6, y, 0.8, 0.5, str(token_id), color="ids")
        arrow(ax, (3.58, y + 0.25), (0.92 + 3 * cell + 0.05, 0.9 + (5 - token_id) * cell + cell / 2), color="muted",
              connection="arc3,rad=0.0")
        grid(ax, 5.6, y + 0.03, [weights[token_id]], cell=cell, cmap="Greens", vmin=-3, vmax=2, annotate=True)
        arrow(ax, (4.42, y + 0.25), (5.55, y + 0.25))
    label(ax, 3.99, 4.2, "token ids", color="edge", fontsize=9)
    label(ax, 5.6 + 1.5 * cell, 4.2, "embedded tokens (4, 3)", color="edge", fontsize=9)
    return fig


FIGURES = {
    "text-to-embeddings.svg": text_to_embeddings,
    "sliding-window.svg": sliding_window,
    "token-plus-position.svg": token_plus_position,
    "document-boundaries.svg": document_boundaries,
    "embedding-lookup.svg": embedding_lookup,
}

if __name__ == "__main__":
    main(FIGURES, __file__)
