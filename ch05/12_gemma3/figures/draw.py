"""Concept figure of the Gemma 3 notebook. Run ``make figures`` (or this script) to redraw it into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main

N_LAYERS = 12  # two rounds of the 5:1 pattern


def gemma3_block() -> Figure:
    """Left: one Gemma 3 layer with norms before and after each sub-layer. Right: the 5:1 local/global pattern,
    each kind with its own RoPE."""
    fig, ax = canvas(12.0, 6.2)
    # --- the layer: residual stream on the left, sub-layers to its right
    x_res, x_sub, w = 0.9, 2.0, 3.2
    label(ax, 3.2, 5.95, "one layer: a norm before and after each sub-layer", color="edge", fontsize=10)
    steps = [  # (y, text, colour)
        (5.0, "RMSNorm (1 + w)", "norm"), (4.35, "attention, QK-norm\nscores x 1/sqrt(query_pre_attn_scalar)", "attention"),
        (3.7, "RMSNorm (1 + w)  post-attention", "norm"),
        (2.55, "RMSNorm (1 + w)", "norm"), (1.9, "GeGLU: down(gelu_tanh(gate) * up)", "ffn"),
        (1.25, "RMSNorm (1 + w)  post-feed-forward", "norm"),
    ]
    for y, text, color in steps:
        box(ax, x_sub, y, w, 0.5 if "\n" not in text else 0.55, text, color=color, fontsize=8.5)
    for (y0, *_), (y1, *_) in zip(steps, steps[1:]):
        if y0 - y1 < 1.0:
            arrow(ax, (x_sub + w / 2, y0), (x_sub + w / 2, y1 + 0.55))
    arrow(ax, (x_res, 0.5), (x_res, 5.7))  # the residual stream
    label(ax, x_res - 0.35, 3.0, "residual stream", rotation=90, color="edge", fontsize=9)
    for y_from, y_to in ((5.25, 3.95), (2.8, 1.5)):  # branch out, and add back
        arrow(ax, (x_res, y_from), (x_sub, y_from), color="muted")
        arrow(ax, (x_sub, y_to), (x_res + 0.05, y_to), color="accent")
        label(ax, x_res + 0.35, y_to + 0.15, "+", color="accent", fontsize=12)
    label(ax, 3.6, 0.55, "input: token embedding x sqrt(emb_dim)", color="edge", fontsize=9)
    # --- the layer pattern
    x0, y0, cell = 6.4, 3.0, 0.42
    label(ax, x0 + N_LAYERS * cell / 2, 5.95, "layers 0 ... 11 of 26-62: five local, then one global",
          color="edge", fontsize=10)
    for i in range(N_LAYERS):
        is_global = (i + 1) % 6 == 0
        box(ax, x0 + i * cell, y0, cell - 0.05, 1.5, "G" if is_global else "L",
            color="attention" if is_global else "position", bold=is_global, fontsize=10,
            edge="accent" if is_global else None)
        label(ax, x0 + i * cell + cell / 2 - 0.02, y0 - 0.2, str(i), fontsize=7)
    label(ax, x0 + N_LAYERS * cell / 2, y0 + 2.1, "local (L): sliding window of 512 (1B) or 1024 tokens, RoPE base 10,000",
          fontsize=9, color="edge")
    label(ax, x0 + N_LAYERS * cell / 2, y0 - 0.65, "global (G): every earlier token, RoPE base 1,000,000\n(4B-27B: positions divided by 8)",
          fontsize=9, color="accent")
    label(ax, x0 + N_LAYERS * cell / 2, 1.2,
          "KV cache: local layers keep only their window,\nso five of every six layers stop growing with the text",
          fontsize=9)
    return fig


FIGURES = {"gemma3_block.svg": gemma3_block}

if __name__ == "__main__":
    main(FIGURES, __file__)
