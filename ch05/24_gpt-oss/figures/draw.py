"""Concept figures of the gpt-oss notebook. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main

N_LAYERS = 8


def gpt_oss_layer() -> Figure:
    """Left: one gpt-oss layer (attention with sinks, a mixture of clamped SwiGLU experts). Right: sliding and full
    layers in turn."""
    fig, ax = canvas(12.0, 6.4)
    x_res, x_sub, w = 0.8, 1.7, 5.0
    label(ax, 3.6, 6.15, "one layer (pre-norm, biases on every projection)", color="edge", fontsize=10)
    steps = [  # (y, text, colour)
        (5.2, "RMSNorm", "norm"),
        (4.35, "attention: 64 query heads, 8 key/value heads of 64\nYaRN RoPE (base 150k, 4k -> 131k), a sink per head", "attention"),
        (3.0, "RMSNorm", "norm"),
        (2.3, "router (with bias): top 4 of 32 / 128 experts,\nsoftmax over the 4 chosen logits", "ffn"),
        (1.3, "each expert: clamped SwiGLU with biases\n(g.clamp(max=7) * sigmoid(1.702 g)) * (u.clamp(-7, 7) + 1)",
         "ffn"),
    ]
    for y, text, color in steps:
        box(ax, x_sub, y, w, 0.6 if "\n" in text else 0.45, text, color=color, fontsize=8)
    for (y0, _, _), (y1, t1, _) in zip(steps, steps[1:]):
        if y0 - y1 < 1.1:
            arrow(ax, (x_sub + w / 2, y0), (x_sub + w / 2, y1 + (0.6 if "\n" in t1 else 0.45)))
    arrow(ax, (x_res, 0.6), (x_res, 6.0))  # the residual stream
    label(ax, x_res - 0.35, 3.3, "residual stream", rotation=90, color="edge", fontsize=9)
    for y_from, y_to in ((5.42, 4.6), (3.22, 1.55)):
        arrow(ax, (x_res, y_from), (x_sub, y_from), color="muted")
        arrow(ax, (x_sub, y_to), (x_res + 0.05, y_to), color="accent")
        label(ax, x_res + 0.3, y_to + 0.15, "+", color="accent", fontsize=12)
    label(ax, 4.1, 0.75, "expert weights stored as MXFP4: 4-bit values, one scale per 32", color="edge", fontsize=9)
    # --- the layer pattern
    x0, y0, cell = 7.2, 3.3, 0.55
    label(ax, x0 + N_LAYERS * cell / 2, 6.15, "layers 0 ... 7 of 24 / 36", color="edge", fontsize=10)
    for i in range(N_LAYERS):
        full = i % 2 == 1
        box(ax, x0 + i * cell, y0, cell - 0.07, 1.6, "F" if full else "S", color="attention" if full else "position",
            bold=full, fontsize=11, edge="accent" if full else None)
        label(ax, x0 + i * cell + cell / 2 - 0.03, y0 - 0.2, str(i), fontsize=7)
    label(ax, x0 + N_LAYERS * cell / 2, y0 + 2.1, "S: the last 128 tokens only (sliding window)", fontsize=9,
          color="edge")
    label(ax, x0 + N_LAYERS * cell / 2, y0 - 0.6, "F: every earlier token", fontsize=9, color="accent")
    label(ax, x0 + N_LAYERS * cell / 2, 1.5, "a sink adds exp(sink) to each softmax denominator:\n"
          "the weights on real tokens sum to less than one,\nso a head can attend to (almost) nothing", fontsize=9)
    return fig


def mxfp4_block() -> Figure:
    """How one MXFP4 block of 32 weights is stored: 16 bytes of 4-bit codes (low nibble first) and one scale byte."""
    fig, ax = canvas(12.0, 3.6)
    label(ax, 6.0, 3.35, "one block of 32 weights = 16 bytes of 4-bit codes + 1 scale byte (4.25 bits per weight)",
          color="edge", fontsize=10)
    x0, cell = 0.3, 0.32
    for i in range(32):
        byte, high = divmod(i, 2)
        box(ax, x0 + i * cell, 2.2, cell - 0.03, 0.6, f"c{i}", color="ids" if high else "ffn", fontsize=6.5)
        if not high:
            label(ax, x0 + i * cell + cell, 1.95, f"byte {byte}", fontsize=6)
    box(ax, x0 + 32 * cell + 0.15, 2.2, 0.9, 0.6, "scale s", color="norm", bold=True, fontsize=8, edge="accent")
    box(ax, 0.4, 0.35, 5.4, 1.15, "code c (4 bits): sign, 2 exponent bits, 1 mantissa bit\n"
        "magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6", color="ffn", fontsize=9)
    box(ax, 6.2, 0.35, 5.4, 1.15, "weight = fp4(c) * 2 ** (s - 127)\nexact in bfloat16: a small number times a "
        "power of two", color="norm", fontsize=9)
    return fig


FIGURES = {"gpt_oss_layer.svg": gpt_oss_layer, "mxfp4_block.svg": mxfp4_block}

if __name__ == "__main__":
    main(FIGURES, __file__)
