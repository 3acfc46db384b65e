"""Concept figures of chapter 5. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

import math

from llms_from_scratch.plotting import COLORS, Figure, apply_style, arrow, box, canvas, label, main, stage_pipeline

# the toy next-token logits of section 5.3 (the words a model might consider after "every effort moves you")
VOCAB = ["closer", "every", "effort", "forward", "inches", "moves", "pizza", "toward", "you"]
LOGITS = [4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79]


def softmax(values: list[float], temperature: float = 1.0) -> list[float]:
    """Softmax of ``values / temperature``; ``-inf`` entries get probability 0."""
    scaled = [v / temperature for v in values]
    top = max(scaled)
    exps = [math.exp(v - top) if v != -math.inf else 0.0 for v in scaled]  # subtract the max: no overflow
    total = sum(exps)
    return [e / total for e in exps]


def overview() -> Figure:
    """Where this chapter sits: building the LLM, pretraining it, then fine-tuning it."""
    return stage_pipeline([
        ("Stage 1: build an LLM", "text", [("1 data preparation", "ch. 2"), ("2 attention", "ch. 3"),
                                          ("3 GPT architecture", "ch. 4")]),
        ("Stage 2: pretrain it", "ffn", [("4 evaluate: the loss", "5.1"), ("5 training loop", "5.2"),
                                         ("6 decoding strategies", "5.3"), ("7 save and load", "5.4"),
                                         ("8 load pretrained weights", "5.5")]),
        ("Stage 3: fine-tune it", "attention", [("9 a classifier", "ch. 6"), ("10 an assistant", "ch. 7")]),
    ], stage_width=3.8, tag_prefix="")


def text_to_loss() -> Figure:
    """From input text to the loss: token ids, logits, probabilities, the target's probability, its negative log."""
    fig, ax = canvas(12.0, 5.0)
    inputs = ["every", "effort", "moves"]
    targets = ["effort", "moves", "you"]
    steps = [("input text", "text", "\"every effort moves\""), ("token ids (1, 3)", "ids", "16833  3626  6100"),
             ("GPT model", "ffn", ""), ("logits (1, 3, 50257)", "attention", "one score per\nvocabulary entry"),
             ("softmax", "attention", "probabilities,\neach row sums to 1")]
    for k, (name, color, note) in enumerate(steps):
        x = 0.2 + k * 2.35
        box(ax, x, 3.6, 2.0, 0.6, name, color=color, fontsize=9.5)
        if note:
            label(ax, x + 1.0, 3.2, note, fontsize=8.5)
        if k:
            arrow(ax, (x - 0.33, 3.9), (x - 0.02, 3.9))
    # the targets: the same text shifted left by one token
    label(ax, 0.2, 2.25, "targets = inputs shifted by one:", ha="left", fontsize=9.5, color="edge")
    for k, (word_in, word_out) in enumerate(zip(inputs, targets)):
        x = 0.4 + k * 1.25
        box(ax, x, 1.35, 1.1, 0.45, word_in, color="text", fontsize=9)
        box(ax, x, 0.5, 1.1, 0.45, word_out, color="ids", fontsize=9)
        arrow(ax, (x + 0.55, 1.33), (x + 0.55, 0.97), color="muted")
    label(ax, 4.35, 1.57, "position t", fontsize=8.5, ha="left")
    label(ax, 4.35, 0.72, "predicts t + 1", fontsize=8.5, ha="left")
    box(ax, 6.0, 1.25, 2.6, 0.75, "p(target) at each position\nprobas[0, t, target_t]", color="attention",
        fontsize=9)
    arrow(ax, (9.7, 3.58), (7.6, 2.02), connection="arc3,rad=-0.1")
    arrow(ax, (5.62, 0.72), (5.98, 1.4), color="muted")
    box(ax, 9.3, 1.25, 2.5, 0.75, "loss = −mean(log p)\n= cross_entropy", color="accent", fontsize=9.5)
    ax.patches[-1].set_alpha(0.3)
    arrow(ax, (8.62, 1.62), (9.28, 1.62))
    label(ax, 10.55, 0.8, "perplexity = exp(loss)", fontsize=9)
    label(ax, 6.0, 4.7, "training raises the probability of every correct next token, which lowers the loss",
          fontsize=9.5, color="edge")
    return fig


def train_val_split() -> Figure:
    """The Verdict split 90/10 by characters, then cut into non-overlapping 256-token windows."""
    fig, ax = canvas(12.0, 3.2)
    total_tokens, context = 5145, 256
    width = 11.0
    split = 0.9 * width
    box(ax, 0.5, 1.5, split, 0.6, "", color="embed")
    box(ax, 0.5 + split, 1.5, width - split, 0.6, "", color="attention")
    # the training windows: consecutive 256-token chunks, each becoming one input row (stride = context length)
    train_tokens = 0.9 * total_tokens
    n_windows = int((train_tokens - 1) // context)
    step = split * context / train_tokens
    for k in range(1, n_windows + 1):
        ax.plot([0.5 + k * step] * 2, [1.5, 2.1], color=COLORS["edge"], linewidth=0.6)
    label(ax, 0.5 + split / 2, 2.4, f"training: first 90% of the characters, about {round(train_tokens, -2):,.0f} tokens",
          fontsize=9.5, color="edge")
    label(ax, 0.5 + split + (width - split) / 2, 2.7, "validation:\nlast 10%", fontsize=9.5, color="edge")
    label(ax, 0.5 + step / 2, 1.8, "256", fontsize=8)
    label(ax, 6.0, 1.1, f"The Verdict: 20,479 characters, {total_tokens:,} tokens; each block is one window of "
          f"{context} tokens (stride {context}, no overlap)", fontsize=9)
    label(ax, 6.0, 0.6, "batches of 2 windows: 9 training batches per epoch, 1 validation batch", fontsize=9)
    return fig


def _bars(ax, probs: list[float], title: str, kept: list[bool] | None = None) -> None:
    xs = range(len(VOCAB))
    colors = [COLORS["accent"] if (kept is None or k) else "#cccccc" for k in (kept or [True] * len(VOCAB))]
    ax.bar(xs, probs, color=colors, width=0.7)
    ax.set_xticks(list(xs), VOCAB, rotation=60, ha="right", fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def temperature() -> Figure:
    """softmax(logits / T) for T = 0.1, 1 and 5 on the chapter's nine-word example."""
    import matplotlib.pyplot as plt

    apply_style()
    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.4), sharey=True)
    for ax, temp, note in zip(axes, [0.1, 1.0, 5.0], ["sharper: almost greedy", "the model's distribution",
                                                      "flatter: unlikely words rise"]):
        _bars(ax, softmax(LOGITS, temp), f"T = {temp:g}: {note}")
    axes[0].set_ylabel("probability")
    fig.suptitle("temperature scaling: probabilities = softmax(logits / T)", fontsize=11)
    fig.tight_layout()
    return fig


def top_k() -> Figure:
    """Top-k sampling with k = 3: the other logits become -inf, the softmax renormalises over the three kept."""
    import matplotlib.pyplot as plt

    apply_style()
    k = 3
    threshold = sorted(LOGITS, reverse=True)[k - 1]
    kept = [v >= threshold for v in LOGITS]
    filtered = [v if keep else -math.inf for v, keep in zip(LOGITS, kept)]
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4), sharey=True)
    _bars(axes[0], softmax(LOGITS), "before: softmax(logits)", kept)
    _bars(axes[1], softmax(filtered), f"after top-{k}: others set to −inf, softmax again", kept)
    for x, p in enumerate(softmax(filtered)):
        if p > 0:
            axes[1].text(x, p + 0.02, f"{p:.2f}", ha="center", fontsize=8)
    axes[0].set_ylabel("probability")
    fig.tight_layout()
    return fig


FIGURES = {
    "pretraining-overview.svg": overview,
    "text-to-loss.svg": text_to_loss,
    "train-val-split.svg": train_val_split,
    "temperature.svg": temperature,
    "top-k.svg": top_k,
}

if __name__ == "__main__":
    main(FIGURES, __file__)
