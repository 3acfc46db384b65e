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


def generation() -> Figure:
    """Text in, text out: the tokenizer, the model and a greedy pick of the most likely token at every position."""
    fig, ax = canvas(12.0, 3.0)
    steps = [("input text", "text", "\"every effort moves\""), ("token ids", "ids", "16833  3626  6100"),
             ("GPT model", "ffn", "chapter 4"), ("logits", "attention", "(1, 3, 50257)"),
             ("argmax per row", "attention", "most likely id"), ("output text", "text", "one token per position")]
    for k, (name, color, note) in enumerate(steps):
        x = 0.15 + k * 2.0
        box(ax, x, 1.5, 1.7, 0.6, name, color=color, fontsize=9.5)
        label(ax, x + 0.85, 1.15, note, fontsize=8.5)
        if k:
            arrow(ax, (x - 0.28, 1.8), (x - 0.02, 1.8))
    label(ax, 6.0, 2.6, "the tokenizer turns text into ids and back; the model scores every vocabulary entry "
          "at every position", fontsize=9.5, color="edge")
    label(ax, 6.0, 0.45, "the last position's pick is the next token of the text; the earlier positions are "
          "what training compares with the targets", fontsize=9)
    return fig


def training_loop() -> Figure:
    """The loop of train_model_simple: epochs, batches, the four update steps, evaluation and a sample."""
    fig, ax = canvas(12.0, 4.6)
    box(ax, 0.2, 0.2, 11.6, 4.1, "", color="neutral")
    label(ax, 0.45, 4.05, "for each epoch (one pass over the training windows)", ha="left", color="edge")
    box(ax, 0.5, 1.2, 8.0, 2.55, "", color="#ffffff")
    label(ax, 0.75, 3.5, "for each batch of the training loader", ha="left", color="edge")
    steps = [("1 reset gradients", "optimizer.zero_grad()"), ("2 loss of the batch", "calc_loss_batch"),
             ("3 gradients", "loss.backward()"), ("4 update weights", "optimizer.step()")]
    for k, (name, code) in enumerate(steps):
        x = 0.75 + k * 1.95
        box(ax, x, 2.35, 1.7, 0.8, name, color="ffn", fontsize=9)
        label(ax, x + 0.85, 2.1, code, fontsize=8, family="monospace")
        if k:
            arrow(ax, (x - 0.24, 2.75), (x - 0.02, 2.75))
    box(ax, 0.75, 1.35, 7.5, 0.5, "every eval_freq steps: training and validation loss on eval_iter batches "
        "(evaluate_model)", color="attention", fontsize=8.5)
    arrow(ax, (8.2, 2.33), (8.2, 1.87), color="muted")
    box(ax, 9.0, 1.2, 2.55, 2.55, "after each epoch:\nprint a greedy\nsample of the\nprompt\n"
        "(generate_and_\nprint_sample)", color="text", fontsize=8.5)
    arrow(ax, (8.52, 2.45), (8.98, 2.45))
    label(ax, 6.0, 0.65, "returned: the two loss lists and the tokens seen at each evaluation, for the plot of "
          "section 5.2", fontsize=9)
    return fig


def gpt2_loading() -> Figure:
    """Where each tensor of OpenAI's GPT-2 file goes in GPTModel: names, transposes and the split of c_attn."""
    fig, ax = canvas(12.5, 5.6)
    label(ax, 2.3, 5.3, "GPT-2 file (124M), block i", color="edge", fontsize=10)
    label(ax, 9.9, 5.3, "our GPTModel", color="edge", fontsize=10)
    rows = [
        ("wte.weight  (50257, 768)", "tok_emb.weight  (50257, 768)", "", "embed"),
        ("wpe.weight  (1024, 768)", "pos_emb.weight  (1024, 768)", "", "position"),
        ("h.i.ln_1 / ln_2: .weight, .bias", "trf_blocks[i].norm1 / norm2: .scale, .shift", "", "norm"),
        ("h.i.attn.c_attn.weight  (768, 2304)", "att.W_query / W_key / W_value\n3 × (768, 768)",
         "split in 3, transpose", "attention"),
        ("h.i.attn.c_proj.weight  (768, 768)", "att.out_proj.weight", "transpose", "attention"),
        ("h.i.mlp.c_fc.weight  (768, 3072)", "ff.layers[0].weight  (3072, 768)", "transpose", "ffn"),
        ("h.i.mlp.c_proj.weight  (3072, 768)", "ff.layers[2].weight  (768, 3072)", "transpose", "ffn"),
        ("ln_f.weight / .bias", "final_norm.scale / .shift", "", "norm"),
        ("wte.weight (the same tensor)", "out_head.weight: tied", "", "embed"),
    ]
    for k, (src, dst, how, color) in enumerate(rows):
        y = 4.6 - k * 0.53
        box(ax, 0.2, y, 4.2, 0.44, src, color=color, fontsize=8.5, family="monospace")
        box(ax, 7.6, y, 4.8, 0.44, dst, color=color, fontsize=8.5, family="monospace")
        arrow(ax, (4.42, y + 0.22), (7.58, y + 0.22), color="accent" if how else "muted")
        if how:
            label(ax, 6.0, y + 0.33, how, fontsize=8.5, color="accent")
    label(ax, 6.25, 0.0 + 0.1, "every name, shape and transpose is checked before anything is copied; the biases "
          "of split and transposed weights are split but never transposed", fontsize=8.5)
    return fig


FIGURES = {
    "pretraining-overview.svg": overview,
    "generation.svg": generation,
    "text-to-loss.svg": text_to_loss,
    "train-val-split.svg": train_val_split,
    "training-loop.svg": training_loop,
    "temperature.svg": temperature,
    "top-k.svg": top_k,
    "gpt2-loading.svg": gpt2_loading,
}

if __name__ == "__main__":
    main(FIGURES, __file__)
