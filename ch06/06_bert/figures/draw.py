"""Concept figures of the BERT notebook. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main

TOKENS = ["[CLS]", "my", "dog", "is", "[MASK]", "[SEP]", "he", "likes", "play", "##ing", "[SEP]"]
SEGMENT_B_FROM = 6  # tokens from here on belong to the second sentence


def bert_input() -> Figure:
    """A sentence pair entering BERT: token + segment + position embeddings, a bidirectional encoder, two heads."""
    fig, ax = canvas(12.8, 6.4)
    step, w, x0 = 1.02, 0.92, 1.3
    rows = [(0.3, "input", "text"), (1.0, "token emb.", "embed"), (1.6, "+ segment", "ids"), (2.2, "+ position", "position")]
    for y, name, _ in rows:
        label(ax, 0.55, y + 0.22, name, fontsize=9, color="edge")
    for k, token in enumerate(TOKENS):
        x = x0 + k * step
        masked = token == "[MASK]"
        box(ax, x, 0.3, w, 0.45, token, color="text", fontsize=8.5, edge="accent" if masked else None)
        box(ax, x, 1.0, w, 0.42, f"E({token.strip('[]')})", color="embed", fontsize=7)
        box(ax, x, 1.6, w, 0.42, "A" if k < SEGMENT_B_FROM else "B", color="ids", fontsize=8.5)
        box(ax, x, 2.2, w, 0.42, str(k), color="position", fontsize=8.5)
        arrow(ax, (x + w / 2, 2.64), (x + w / 2, 3.08), color="muted")
        arrow(ax, (x + w / 2, 3.92), (x + w / 2, 4.33), color="muted")
        box(ax, x, 4.35, w, 0.42, f"h{k}", color="embed", fontsize=8.5,
            edge="accent" if k in (0, 4) else None)
    right = x0 + len(TOKENS) * step - 0.1
    box(ax, x0, 3.1, right - x0, 0.8, "LayerNorm, then the encoder blocks: every token attends to every "
        "token, before and after it\n(no causal mask; padding hidden), post-norm, GELU", color="attention", fontsize=9)
    # the two uses of the output
    box(ax, x0 - 0.2, 5.35, 2.6, 0.6, "[CLS] vector: classifier\n(e.g. spam / not spam)", color="ffn", fontsize=8.5)
    arrow(ax, (x0 + w / 2, 4.79), (x0 + w / 2, 5.33), color="accent")
    xm = x0 + 4 * step
    box(ax, xm - 0.9, 5.35, 2.7, 0.6, "masked-LM head -> \"cute\"\n(pre-training target)", color="ffn", fontsize=8.5)
    arrow(ax, (xm + w / 2, 4.79), (xm + w / 2, 5.33), color="accent")
    label(ax, 9.9, 5.65, "sentence A: tokens 0-5, sentence B: 6-10;\n"
          "about 15% of tokens are hidden in pre-training", fontsize=8.5)
    return fig


FIGURES = {"bert_input.svg": bert_input}

if __name__ == "__main__":
    main(FIGURES, __file__)
