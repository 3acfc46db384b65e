"""Concept figures of the gated DeltaNet notebook. Run ``make figures`` (or this script) to redraw them here."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, grid, label, main


def cache_vs_state() -> Figure:
    """Softmax attention reads a cache that grows by one key/value row per token; linear attention reads one
    fixed matrix that every token updates."""
    fig, ax = canvas(12.0, 5.2)
    # left: the KV cache, one row per past token
    label(ax, 2.6, 4.85, "softmax attention: keep every key and value", color="edge", fontsize=11, fontweight="bold")
    rows = 7
    for i in range(rows):
        y = 4.1 - i * 0.42
        box(ax, 0.6, y, 1.5, 0.34, f"k{i + 1}", color="attention", fontsize=8)
        box(ax, 2.25, y, 1.5, 0.34, f"v{i + 1}", color="embed", fontsize=8)
    label(ax, 2.17, 4.1 - rows * 0.42 + 0.15, "... one more row per token", fontsize=9)
    box(ax, 4.3, 2.55, 0.8, 0.45, "q_t", color="attention", fontsize=9)
    arrow(ax, (4.28, 2.78), (3.78, 3.9), color="muted")
    arrow(ax, (4.28, 2.78), (3.78, 1.6), color="muted")
    label(ax, 2.2, 0.45, "step t compares q_t with t keys:\nmemory and time per token grow with t", fontsize=9,
          color="accent")
    # right: the state matrix
    label(ax, 9.0, 4.85, "linear attention: one matrix per head", color="edge", fontsize=11, fontweight="bold")
    values = [[((3 * i + 5 * j) % 7) / 6 for j in range(6)] for i in range(6)]
    grid(ax, 8.05, 1.75, values, cell=0.35, cmap="Blues")
    label(ax, 9.1, 1.5, r"$S_t$  (value_dim x key_dim)", fontsize=9)
    box(ax, 6.1, 3.35, 1.5, 0.6, "write k_t, v_t", color="ffn", fontsize=9)
    arrow(ax, (7.62, 3.65), (8.0, 3.3))
    box(ax, 10.55, 2.5, 1.3, 0.6, "o_t = S_t q_t", color="attention", fontsize=9)
    arrow(ax, (10.2, 2.8), (10.53, 2.8))
    label(ax, 9.0, 4.3, r"$S_t = \alpha_t\, S_{t-1} (I - \beta_t k_t k_t^\top) + \beta_t v_t k_t^\top$", fontsize=11,
          color="edge")
    label(ax, 9.0, 0.45, "the same size after 10 tokens or 1 million:\nmemory and time per token are constant",
          fontsize=9, color="accent")
    ax.plot([5.6, 5.6], [0.3, 4.9], color="#8a8a8a", lw=1, ls=":")
    return fig


def chunked_form() -> Figure:
    """The chunked form: inside a chunk, a lower-triangular solve couples the tokens' writes; only the state
    passes from one chunk to the next."""
    fig, ax = canvas(12.0, 4.4)
    n_chunks, size = 3, 5
    x0, step = 0.5, 3.9
    lower = [[1.0 - 0.12 * (i - j) if j <= i else 0.0 for j in range(size)] for i in range(size)]
    upper = [(i, j) for i in range(size) for j in range(size) if j > i]
    for c in range(n_chunks):
        x = x0 + c * step
        for t in range(size):
            box(ax, x + t * 0.44, 3.55, 0.38, 0.38, str(c * size + t + 1), color="text", fontsize=8)
        grid(ax, x + 0.25, 1.35, lower, cell=0.34, cmap="Reds", vmin=0.0, vmax=1.0, masked=upper)
        label(ax, x + 1.1, 1.05, "solve (I + A) U = ...\n(C x C, lower-triangular)", fontsize=8)
        arrow(ax, (x + 1.1, 3.5), (x + 1.1, 3.1), color="muted")
        box(ax, x + 2.3, 2.0, 0.9, 0.55, f"S{c + 1}", color="ffn", fontsize=9, bold=True)
        arrow(ax, (x + 1.97, 2.27), (x + 2.28, 2.27), color="accent")
        if c:
            arrow(ax, (x - step + 3.22, 2.27), (x + 0.2, 2.27), color="accent")
    box(ax, x0 - 0.45, 2.0, 0.4, 0.55, "S0", color="ffn", fontsize=8)
    arrow(ax, (x0 - 0.03, 2.27), (x0 + 0.2, 2.27), color="accent")
    label(ax, 6.0, 0.35, "within a chunk: a few matrix products (parallel);  across chunks: one state update each "
          "(sequential)", fontsize=9, color="edge")
    return fig


FIGURES = {"cache_vs_state.svg": cache_vs_state, "chunked_form.svg": chunked_form}

if __name__ == "__main__":
    main(FIGURES, __file__)
