"""Concept figures of chapter 6. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

from matplotlib.patches import Rectangle

from llms_from_scratch.plotting import COLORS, Figure, arrow, box, canvas, grid, label, main, stage_pipeline


def pipeline() -> Figure:
    """The three stages of classification fine-tuning, each step tagged with the section that does it."""
    return stage_pipeline([
        ("Stage 1: prepare the data", "text", [("1 download the SMS data", "6.2"), ("2 balance and split", "6.2"),
                                               ("3 create data loaders", "6.3")]),
        ("Stage 2: set up the model", "ffn", [("4 initialise the GPT", "6.4"), ("5 load pretrained weights", "6.4"),
                                              ("6 new head, freeze layers", "6.5"), ("7 loss and accuracy", "6.6")]),
        ("Stage 3: fine-tune and use", "attention", [("8 fine-tune the model", "6.7"),
                                                     ("9 evaluate on test data", "6.7"),
                                                     ("10 classify new messages", "6.8")]),
    ])


def classification_head() -> Figure:
    """Swap the 50,257-way output head for a 2-way one; only the last block, final norm and new head train."""
    fig, ax = canvas(11.0, 7.4)
    cx, w = 0.6, 4.4
    frozen, trainable = COLORS["neutral"], COLORS["embed"]
    steps = [(0.3, "token ids (b, T)", "ids", None), (1.05, "token + positional embeddings", frozen, "frozen"),
             (1.8, "transformer block 1", frozen, "frozen"), (2.45, "⋮", "white", None),
             (3.05, "transformer block 11", frozen, "frozen"), (3.8, "transformer block 12", trainable, "trained"),
             (4.55, "final LayerNorm", trainable, "trained"), (5.3, "new out_head: Linear(768 → 2)", trainable, "new"),
             (6.35, "2 scores per token: not spam, spam", "text", None)]
    for y, name, color, state in steps:
        box(ax, cx, y, w, 0.5, name, color=color, fontsize=10, edge="white" if name == "⋮" else None,
            bold=state == "new")
        if state:
            label(ax, cx - 0.1, y + 0.25, state, ha="right", fontsize=9,
                  color="accent" if state != "frozen" else "muted")
    for (y0, *_), (y1, *_) in zip(steps, steps[1:]):
        arrow(ax, (cx + w / 2, y0 + 0.52), (cx + w / 2, y1 - 0.02))
    # the replaced head, struck through, beside the new one
    box(ax, 6.3, 5.3, 3.6, 0.5, "old out_head: Linear(768 → 50,257)", color="neutral", fontsize=9)
    ax.plot([6.3, 9.9], [5.3, 5.8], color=COLORS["accent"], linewidth=1.5)
    arrow(ax, (6.28, 5.55), (5.02, 5.55), color="accent", linestyle="--")
    label(ax, 8.1, 6.1, "replaced", color="accent", fontsize=9)
    label(ax, 8.1, 3.6, "GPT-2 124M: 124 million parameters;\nabout 7.1 million of them train here:\n"
          "block 12 (7.1 M), final norm (1,536)\nand the new head (1,538)", fontsize=9, color="edge")
    label(ax, 8.1, 1.6, "frozen layers keep their pretrained\nweights; requires_grad = False", fontsize=9)
    return fig


def last_token() -> Figure:
    """Why the classifier reads the last token: under the causal mask only its row sees every token."""
    fig, ax = canvas(11.0, 4.0)
    words = ["Do", "you", "have", "time"]
    cell = 0.55
    x0, y0 = 1.6, 0.5
    values = [[1.0 if j <= i else 0.0 for j in range(4)] for i in range(4)]
    future = [(i, j) for i in range(4) for j in range(4) if j > i]
    grid(ax, x0, y0, values, cell=cell, cmap="Reds", vmin=0, vmax=1.6, masked=future)
    for k, word in enumerate(words):
        label(ax, x0 - 0.1, y0 + (3 - k) * cell + cell / 2, word, ha="right", fontsize=10,
              color="accent" if k == 3 else "edge")
        label(ax, x0 + k * cell + cell / 2, y0 + 4 * cell + 0.2, word, fontsize=10, color="edge")
    ax.add_patch(Rectangle((x0, y0), 4 * cell, cell, fill=False, edgecolor=COLORS["accent"], linewidth=2))
    label(ax, x0 + 2 * cell, 3.5, "which tokens each token attends to", fontsize=9)
    # the output rows: one pair of class scores per token, the last one used
    ox = 6.2
    for k, word in enumerate(words):
        y = y0 + (3 - k) * cell + 0.05
        last = k == 3
        box(ax, ox, y, 1.9, cell - 0.1, f"{word}: [·, ·]", color="attention" if last else "neutral", fontsize=9,
            edge="accent" if last else None)
        arrow(ax, (x0 + 4 * cell + 0.1, y + (cell - 0.1) / 2), (ox - 0.05, y + (cell - 0.1) / 2), color="muted")
    arrow(ax, (ox + 1.95, y0 + 0.25), (8.75, y0 + 0.25), color="accent")
    box(ax, 8.8, y0, 1.9, cell - 0.1, "spam / not spam", color="text", fontsize=9)
    label(ax, ox + 0.95, 3.5, "outputs (1, 4, 2)", fontsize=9)
    label(ax, 9.75, 1.8, "outputs[:, -1, :]\nthe only row that has\nseen the whole message", fontsize=9,
          color="accent")
    return fig


def categories() -> Figure:
    """Instruction fine-tuning answers free-form requests; classification fine-tuning picks one of a fixed set."""
    fig, ax = canvas(11.0, 4.6)
    rows = [
        (2.6, "Instruction fine-tuning (chapter 7)",
         "Is this text spam? Answer yes or no:\n'You won $1000, call now'", "text",
         "'Yes.'  (any text; the answer\nhas to be read and parsed)"),
        (0.4, "Classification fine-tuning (this chapter)",
         "'You won $1000, call now'", "text",
         "spam   (one of a fixed set\nof labels: spam, not spam)"),
    ]
    for y, title, prompt, color, answer in rows:
        label(ax, 0.2, y + 1.55, title, ha="left", fontsize=11, color="edge")
        box(ax, 0.2, y, 3.9, 1.2, prompt, color=color, fontsize=9)
        box(ax, 4.7, y + 0.2, 1.8, 0.8, "fine-tuned\nGPT", color="ffn", fontsize=10)
        box(ax, 7.1, y, 3.7, 1.2, answer, color="embed", fontsize=9)
        arrow(ax, (4.12, y + 0.6), (4.68, y + 0.6))
        arrow(ax, (6.52, y + 0.6), (7.08, y + 0.6))
    return fig


def padding() -> Figure:
    """Messages of different lengths become one rectangular batch: truncate to max_length, pad with id 50256."""
    fig, ax = canvas(11.0, 4.2)
    messages = [("'Ok lar... Joking wif u oni...'", [18690, 26371, 986, 449, 5730, 266, 361, 334, 319, 72, 986]),
                ("'Free entry in 2 a wkly comp'", [11146, 5726, 287, 362, 257, 266, 74, 306, 552]),
                ("'Hi'", [17250])]
    cell, x0, width = 0.62, 4.2, 10
    label(ax, 0.2, 3.85, "message", ha="left", fontsize=10, color="edge")
    label(ax, x0, 3.85, "token ids, padded to max_length (here 10; 120 for the training set)", ha="left",
          fontsize=10, color="edge")
    for r, (text, ids) in enumerate(messages):
        y = 2.9 - r * 0.85
        label(ax, 0.2, y + cell / 2, text, ha="left", fontsize=9)
        if len(ids) > width:  # the cut-off tail, crossed out
            label(ax, x0 + width * cell + 0.1, y + cell / 2, f"+{len(ids) - width} cut", ha="left", fontsize=8,
                  color="accent")
        for k in range(width):
            real = k < len(ids)
            box(ax, x0 + k * cell, y, cell - 0.04, cell - 0.04, str(ids[k]) if real else "50256",
                color="ids" if real else "neutral", fontsize=7)
    last = x0 + (width - 1) * cell
    ax.add_patch(Rectangle((last - 0.03, 1.15 - 0.03), cell + 0.02, 2 * 0.85 + cell + 0.02, fill=False,
                           edgecolor=COLORS["accent"], linewidth=1.8))
    label(ax, x0 + width * cell / 2, 0.75, "grey: <|endoftext|> padding; red frame: the last position, whose output "
          "the classifier reads", fontsize=9)
    label(ax, x0 + width * cell / 2, 0.35, "stacked, the rows form one (batch_size, max_length) tensor of token ids",
          fontsize=9)
    return fig


def scores_to_label() -> Figure:
    """From the last token's two scores to a predicted class (accuracy) and to a training signal (cross-entropy)."""
    fig, ax = canvas(11.0, 3.6)
    box(ax, 0.2, 1.4, 2.2, 0.8, "outputs[:, -1, :]\n[-3.6, 3.9]", color="embed", fontsize=9)
    box(ax, 3.2, 2.3, 2.2, 0.8, "softmax\n[0.001, 0.999]", color="attention", fontsize=9)
    box(ax, 6.2, 2.3, 2.0, 0.8, "argmax → 1\n(spam)", color="ffn", fontsize=9)
    box(ax, 8.9, 2.3, 1.9, 0.8, "correct?\ncount → accuracy", color="neutral", fontsize=9)
    box(ax, 3.2, 0.4, 5.0, 0.8, "cross-entropy with the label 1 (spam)\n= -log 0.999 ≈ 0.001", color="attention",
        fontsize=9)
    box(ax, 8.9, 0.4, 1.9, 0.8, "loss → backward\n→ optimizer", color="neutral", fontsize=9)
    arrow(ax, (2.42, 1.95), (3.18, 2.6))
    arrow(ax, (2.42, 1.65), (3.18, 0.9))
    arrow(ax, (5.42, 2.7), (6.18, 2.7))
    arrow(ax, (8.22, 2.7), (8.88, 2.7))
    arrow(ax, (8.22, 0.8), (8.88, 0.8))
    label(ax, 7.2, 3.35, "measured: accuracy (not differentiable)", fontsize=9, color="accent")
    label(ax, 5.7, 1.45, "trained: the loss (differentiable)", fontsize=9, color="accent")
    return fig


FIGURES = {
    "categories.svg": categories,
    "finetune-pipeline.svg": pipeline,
    "padding.svg": padding,
    "scores-to-label.svg": scores_to_label,
    "classification-head.svg": classification_head,
    "last-token.svg": last_token,
}

if __name__ == "__main__":
    main(FIGURES, __file__)
