"""Concept figure of the superword BPE bonus. Run ``make figures`` (or this script) to redraw it into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main

# One sentence, cut the way each stage sees it (an illustration, not a trained tokenizer's output). "·" marks a space.
STAGE1 = ["it", "·is", "·one", "·of", "·the", "·best", "·fil", "ms", "·."]
STAGE2 = ["it·is", "·one·of·the·best", "·films", "·."]


def _row(ax, y: float, pieces: list[str], color: str, *, unit: float = 0.17) -> None:
    """Tokens as boxes whose widths follow their length, left to right from x = 2.3."""
    x = 2.3
    for piece in pieces:
        w = 0.25 + unit * len(piece)
        box(ax, x, y, w, 0.5, piece, color=color, fontsize=10, family="monospace")
        x += w + 0.08


def two_stages() -> Figure:
    """Stage 1 merges inside GPT-2's chunks; stage 2 keeps those tokens and merges across spaces up to a sentence end."""
    fig, ax = canvas(11.0, 4.6)
    label(ax, 1.1, 3.85, "stage 1\nplain BPE", fontsize=10)
    _row(ax, 3.6, STAGE1, "text")
    label(ax, 2.3, 4.35, "merges stay inside a word (GPT-2's chunks: a word with its leading space)", ha="left",
          fontsize=9)
    arrow(ax, (5.0, 3.55), (5.0, 2.85), color="accent")
    label(ax, 5.15, 3.2, "at the transition size: keep every token, merge across spaces up to . ! ? or a line break",
          ha="left", fontsize=9, color="accent")
    label(ax, 1.1, 2.55, "stage 2\nsuperwords", fontsize=10)
    _row(ax, 2.3, STAGE2, "ids")
    label(ax, 2.3, 1.95, "9 tokens become 4: frequent phrases are single tokens; \" .\" stays apart", ha="left",
          fontsize=9)
    # the vocabulary: bytes, stage-1 merges, stage-2 merges, special tokens
    x = 0.6
    for text, w, color in [("256 bytes", 1.5, "neutral"), ("stage-1 merges (80%)", 5.0, "text"),
                           ("stage 2 (20%)", 1.6, "ids"), ("<|endoftext|>", 1.8, "neutral")]:
        box(ax, x, 0.5, w, 0.5, text, color=color, fontsize=9)
        x += w + 0.05
    label(ax, 0.6, 1.3, "the vocabulary, ids in merge order: encoding replays stage 1 in each chunk, then stage 2 in each "
          "sentence", ha="left", fontsize=9)
    return fig


FIGURES = {"superword-bpe.svg": two_stages}

if __name__ == "__main__":
    main(FIGURES, __file__)
