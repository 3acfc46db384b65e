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


def pretrained_vs_instruct() -> Figure:
    """The same request given to a pretrained model and to an instruction-fine-tuned one (an illustration)."""
    fig, ax = canvas(11.4, 4.0)
    box(ax, 0.2, 1.45, 3.3, 1.1, "Convert the active sentence to\npassive: 'The chef cooks the\nmeal every day.'",
        color="text", fontsize=9.5)
    label(ax, 1.85, 2.85, "the same request", fontsize=9.5, color="edge")
    label(ax, 1.85, 0.6, "an illustration, not a\nrecorded output", fontsize=8.5)
    rows = [
        (2.55, "pretrained LLM\n(chapter 5)", "neutral",
         "continues the text, e.g. with more of the\nsame: \"Convert the passive sentence to\nactive: ...\"",
         "it has learned which text tends to follow which"),
        (0.45, "instruction-fine-tuned\nLLM (this chapter)", "embed",
         "answers: \"The meal is cooked by the\nchef every day.\"",
         "it has learned that a request is followed by a response"),
    ]
    for y, model, color, output, why in rows:
        arrow(ax, (3.55, 2.0), (4.15, y + 0.5), color="muted")
        box(ax, 4.2, y, 2.6, 1.0, model, color=color, fontsize=9.5, bold=True)
        arrow(ax, (6.85, y + 0.5), (7.2, y + 0.5))
        box(ax, 7.25, y, 3.95, 1.0, output, color=color, fontsize=9)
        label(ax, 9.22, y - 0.2, why, fontsize=8.5)
    return fig


def prompt_styles() -> Figure:
    """The same entry in the Alpaca prompt style and in the Phi-3 style."""
    fig, ax = canvas(12.0, 4.6)
    alpaca = ("Below is an instruction that describes a\ntask. Write a response that appropriately\n"
              "completes the request.\n\n### Instruction:\nIdentify the correct spelling of the\n"
              "following word.\n\n### Input:\nOcassion\n\n### Response:\nThe correct spelling is 'Occasion.'")
    phi3 = ("<|user|>\nIdentify the correct spelling of the\nfollowing word.\nOcassion\n<|assistant|>:\n"
            "The correct spelling is 'Occasion.'")
    for x, title, text, note in [
        (0.2, "Alpaca (this chapter)", alpaca, "a preamble and ### headings; longer"),
        (6.2, "Phi-3 (exercise 7.1)", phi3, "role tags, no preamble; about a third\nfewer tokens on this data set"),
    ]:
        label(ax, x + 2.8, 4.35, title, fontsize=10.5, color="edge", fontweight="bold")
        height = 0.2 + 0.2 * (text.count("\n") + 1)  # the box fits its text, so the lengths compare at a glance
        box(ax, x, 4.05 - height, 5.6, height, "", color="text")
        ax.text(x + 0.15, 3.95, text, ha="left", va="top", fontsize=8.8, family="DejaVu Sans Mono", linespacing=1.25)
        label(ax, x + 2.8, 3.93 - height, note, fontsize=9, va="top")
    return fig


def instruction_masking() -> Figure:
    """Targets of one short entry: the whole text by default, only the response when the instruction is masked."""
    fig, ax = canvas(13.6, 3.4)
    # the last 16 target tokens of "Name the author of 'Pride and Prejudice'." + "Jane Austen." and end-of-text
    tokens = ["'Pr", "ide", "and", "Pre", "jud", "ice", "'.", "\\n", "\\n", "###", "Resp.", ":", "\\n", "Jane",
              "Aust", "en", ".", "<eot>"]
    response_from = 13  # "Jane" is the first response token
    cell = 0.6
    x0 = 2.0
    rows = [(2.2, "default (this chapter):\nevery text token is a target", False),
            (0.9, "instruction masked\n(exercise 7.2)", True)]
    for y, name, masked in rows:
        label(ax, x0 - 0.15, y + 0.21, name, ha="right", fontsize=9, color="edge")
        label(ax, x0 + 0.3, y + 0.21, "…", fontsize=11, color="edge")
        for k, token in enumerate(tokens):
            hidden = masked and k < response_from
            color = "position" if hidden else ("embed" if k >= response_from else "ids")
            box(ax, x0 + 0.6 + k * cell, y, cell - 0.06, 0.42, "-100" if hidden else token, color=color,
                fontsize=7.5)
    label(ax, x0 + 0.6 + response_from / 2 * cell, 2.95, "instruction and template (prompt)", fontsize=9)
    label(ax, x0 + 0.6 + (response_from + len(tokens)) / 2 * cell, 2.95, "response + end-of-text", fontsize=9,
          color="accent")
    label(ax, 6.8, 0.35, "-100 targets are skipped by cross_entropy: with masking the loss counts only the "
          "response, though the model still reads the whole prompt", fontsize=9)
    return fig


def evaluation_approaches() -> Figure:
    """Three common ways to evaluate a chat model, and what this chapter uses."""
    fig, ax = canvas(12.0, 3.4)
    cards = [
        ("benchmarks with fixed answers", "ids", "multiple-choice or short-answer\nquestions (e.g. MMLU);\n"
         "scored by accuracy"),
        ("human preference", "neutral", "people compare two models'\nanswers and pick the better one\n"
         "(e.g. LMSYS Chatbot Arena)"),
        ("an LLM as judge", "attention", "a strong model scores the answers\nagainst a reference or another\n"
         "model (e.g. AlpacaEval)"),
    ]
    for k, (title, color, text) in enumerate(cards):
        x = 0.2 + k * 3.95
        box(ax, x, 2.55, 3.7, 0.6, title, color=color, bold=True, fontsize=10)
        box(ax, x, 1.15, 3.7, 1.3, text, color=color, fontsize=9)
    label(ax, 6.0, 0.55, "this chapter (7.8): ROUGE-L and exact match against the reference answers, and an LLM "
          "judge over an\nOpenAI-compatible API", fontsize=9.5, color="accent")
    return fig


FIGURES = {
    "pretrained-vs-instruct.svg": pretrained_vs_instruct,
    "sft-pipeline.svg": sft_pipeline,
    "prompt-styles.svg": prompt_styles,
    "alpaca-template.svg": alpaca_template,
    "collate-steps.svg": collate_steps,
    "instruction-masking.svg": instruction_masking,
    "evaluation-approaches.svg": evaluation_approaches,
}

if __name__ == "__main__":
    main(FIGURES, __file__)
