"""Concept figures of chapter 7. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main, stage_pipeline

PAD, IGNORE = 50256, -100
# the chapter's small example batch: three "texts" of 5, 2 and 3 token ids
BATCH = [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]]


def sft_pipeline() -> Figure:
    """The three stages of instruction fine-tuning, each step tagged with its section."""
    return stage_pipeline([
        ("Stage 1: prepare the data", "text", [("1 load and format the data", "7.2"),
                                               ("2 batch: pad, shift, mask", "7.3"),
                                               ("3 create data loaders", "7.4")]),
        ("Stage 2: fine-tune", "ffn", [("4 load a pretrained LLM", "7.5"), ("5 fine-tune on instructions", "7.6"),
                                       ("6 inspect the loss", "7.6")]),
        ("Stage 3: evaluate", "attention", [("7 extract responses", "7.7"), ("8 read them", "7.7"),
                                            ("9 score them", "7.8")]),
    ], stage_width=3.8)


def alpaca_template() -> Figure:
    """The Alpaca prompt template, filled with one entry of the data set."""
    fig, ax = canvas(11.0, 5.6)
    parts = [
        ("preamble", "Below is an instruction that describes a task. Write a response that\n"
                     "appropriately completes the request.", "neutral", 0.8),
        ("instruction", "### Instruction:\nIdentify the correct spelling of the following word.", "text", 0.8),
        ("input (only when\nthe entry has one)", "### Input:\nOcassion", "text", 0.8),
        ("response: what the\nmodel learns to write", "### Response:\nThe correct spelling is 'Occasion.'", "embed",
         0.8),
    ]
    y = 4.9
    for name, text, color, h in parts:
        y -= h + 0.2
        box(ax, 2.6, y, 8.2, h, "", color=color)
        ax.text(2.75, y + h / 2, text, ha="left", va="center", fontsize=9.5, family="DejaVu Sans Mono")
        label(ax, 2.45, y + h / 2, name, ha="right", fontsize=9, color="edge")
    label(ax, 6.7, 5.3, "entry = {instruction, input, output}  →  one training text", fontsize=10, color="edge")
    label(ax, 6.7, 0.4, "at inference the prompt stops after \"### Response:\" and the model writes the rest",
          fontsize=9)
    return fig


def _row(ax, x: float, y: float, values: list[int], highlight: dict[int, str], cell_w: float = 0.72) -> None:
    for k, value in enumerate(values):
        color = highlight.get(k, "ids")
        box(ax, x + k * cell_w, y, cell_w - 0.06, 0.42, str(value), color=color, fontsize=8.5)


def collate_steps() -> Figure:
    """The collate function in its three steps, on the chapter's example batch of token ids."""
    fig, ax = canvas(12.0, 7.6)
    length = max(len(t) for t in BATCH) + 1
    padded = [t + [PAD] * (length - len(t)) for t in BATCH]
    inputs = [p[:-1] for p in padded]
    targets = [p[1:] for p in padded]
    masked = [[IGNORE if k >= len(t) else v for k, v in enumerate(row)] for t, row in zip(BATCH, targets)]
    pad_colors = [{k: "neutral" for k in range(len(t), length - 1)} for t in BATCH]

    def block(y_top: float, x: float, rows: list[list[int]], colors: list[dict[int, str]], title: str) -> None:
        label(ax, x + 1.8, y_top + 0.05, title, fontsize=9.5, color="edge")
        for r, values in enumerate(rows):
            _row(ax, x, y_top - 0.5 - r * 0.5, values, colors[r])

    label(ax, 0.2, 7.3, "draft 1: append <|endoftext|> (50256), pad every text to the longest, drop the last column",
          ha="left", fontsize=10, color="edge")
    block(6.6, 0.3, inputs, pad_colors, "inputs")
    label(ax, 0.2, 4.8, "draft 2: targets are the padded texts shifted left by one (position t predicts t + 1)",
          ha="left", fontsize=10, color="edge")
    block(4.1, 0.3, inputs, pad_colors, "inputs")
    target_colors = [{k: ("attention" if k == len(t) - 1 else "neutral") for k in range(len(t) - 1, length - 1)}
                     for t in BATCH]
    block(4.1, 6.3, targets, target_colors, "targets")
    label(ax, 0.2, 2.3, "custom_collate_fn: keep the first 50256 as a target, replace the rest of the padding by "
          "-100", ha="left", fontsize=10, color="edge")
    block(1.6, 0.3, inputs, pad_colors, "inputs")
    final_colors = [{k: ("attention" if k == len(t) - 1 else "position") for k in range(len(t) - 1, length - 1)}
                    for t in BATCH]
    block(1.6, 6.3, masked, final_colors, "targets")
    for y in (3.55, 1.05):
        arrow(ax, (4.0, y), (6.2, y), color="muted")
    label(ax, 10.0, 0.6, "-100: skipped\nby cross_entropy", ha="left", fontsize=9, color="edge")
    label(ax, 10.0, 3.1, "red: the end-of-text\ntoken the model\nlearns to predict", ha="left", fontsize=9, color="accent")
    return fig


FIGURES = {
    "sft-pipeline.svg": sft_pipeline,
    "alpaca-template.svg": alpaca_template,
    "collate-steps.svg": collate_steps,
}

if __name__ == "__main__":
    main(FIGURES, __file__)
