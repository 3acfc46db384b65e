"""Concept figures of appendix A. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

import math

from matplotlib.patches import Circle

from llms_from_scratch.plotting import COLORS, Figure, arrow, box, canvas, label, main

# the logistic-regression example of section A.3
X1, W1, B, Y = 1.1, 2.2, 0.0, 1.0


def _node(ax, x: float, y: float, text: str) -> None:
    ax.add_patch(Circle((x, y), 0.32, facecolor=COLORS["ffn"], edgecolor=COLORS["edge"], linewidth=1.1))
    ax.text(x, y, text, ha="center", va="center", fontsize=12)


def logistic_graph() -> Figure:
    """The computation graph of a one-input logistic regression, forward values above, gradients below."""
    z = X1 * W1 + B
    a = 1 / (1 + math.exp(-z))
    loss = -(Y * math.log(a) + (1 - Y) * math.log(1 - a))
    dz = a - Y  # d loss / d z for a sigmoid followed by binary cross entropy
    fig, ax = canvas(11.4, 4.6)
    box(ax, 0.2, 3.3, 1.3, 0.55, f"x1 = {X1}", color="text", fontsize=10)
    box(ax, 0.2, 2.1, 1.3, 0.55, f"w1 = {W1}", color="embed", fontsize=10, edge="accent")
    box(ax, 2.2, 0.9, 1.3, 0.55, f"b = {B}", color="embed", fontsize=10, edge="accent")
    _node(ax, 2.85, 2.9, "×")
    arrow(ax, (1.52, 3.55), (2.55, 3.05))
    arrow(ax, (1.52, 2.4), (2.55, 2.75))
    _node(ax, 4.6, 2.9, "+")
    arrow(ax, (3.18, 2.9), (4.27, 2.9))
    arrow(ax, (3.2, 1.47), (4.4, 2.62))
    label(ax, 3.75, 3.15, "u = x1 · w1", fontsize=9)
    _node(ax, 6.4, 2.9, "σ")
    arrow(ax, (4.93, 2.9), (6.07, 2.9))
    label(ax, 5.5, 3.25, f"z = {z:.2f}", fontsize=9, color="edge")
    box(ax, 8.1, 2.6, 1.5, 0.6, "loss L", color="attention", fontsize=10)
    arrow(ax, (6.73, 2.9), (8.08, 2.9))
    label(ax, 7.4, 3.25, f"a = {a:.4f}", fontsize=9, color="edge")
    box(ax, 8.2, 3.7, 1.3, 0.55, f"y = {Y:g}", color="ids", fontsize=10)
    arrow(ax, (8.85, 3.68), (8.85, 3.22))
    label(ax, 8.85, 2.35, f"L = {loss:.4f}", fontsize=9, color="edge")
    # the backward pass: the chain rule walks the graph from the loss back to the parameters
    arrow(ax, (8.1, 2.65), (6.6, 2.0), color="accent", linestyle="--", connection="arc3,rad=-0.2")
    label(ax, 7.5, 1.75, f"∂L/∂z = a − y = {dz:.4f}", fontsize=9, color="accent")
    label(ax, 5.4, 0.55, f"∂L/∂w1 = ∂L/∂z · x1 = {dz * X1:.4f}      ∂L/∂b = ∂L/∂z · 1 = {dz:.4f}", fontsize=9,
          color="accent")
    label(ax, 5.4, 4.35, "forward: values flow left to right; backward (dashed): gradients flow right to left",
          fontsize=9)
    return fig


def training_loop() -> Figure:
    """The training loop of section A.7: per batch forward, loss, zero_grad, backward, step; then evaluate."""
    fig, ax = canvas(10.0, 5.6)
    mono = "DejaVu Sans Mono"
    box(ax, 0.2, 4.7, 2.6, 0.55, "for epoch in range(n):", color="neutral", fontsize=9, family=mono)
    box(ax, 0.5, 3.7, 2.6, 0.7, "for features, labels\n    in train_loader:", color="text", fontsize=9, family=mono)
    arrow(ax, (1.5, 4.68), (1.5, 4.42))
    steps = [("logits = model(features)", "forward pass", "ffn"),
             ("loss = F.cross_entropy(logits, labels)", "how wrong is the batch?", "attention"),
             ("optimizer.zero_grad()", "forget the last gradients", "neutral"),
             ("loss.backward()", "gradients by autograd", "attention"),
             ("optimizer.step()", "update the weights", "embed")]
    x, w, h = 3.9, 3.6, 0.55
    ys = [4.75 - k * 0.85 for k in range(len(steps))]
    for k, ((code, note, color), y) in enumerate(zip(steps, ys)):
        box(ax, x, y, w, h, code, color=color, fontsize=8 if len(code) > 30 else 9, family=mono)
        label(ax, x + w + 0.15, y + h / 2, note, ha="left", fontsize=9)
        if k:
            arrow(ax, (x + w / 2, ys[k - 1] - 0.02), (x + w / 2, y + h + 0.02))
    arrow(ax, (3.12, 4.05), (3.88, 4.9))
    # next batch: back from the last step to the start of the inner loop
    arrow(ax, (3.88, ys[-1] + h / 2), (2.2, 3.68), color="accent", connection="arc3,rad=-0.3")
    label(ax, 2.6, 1.9, "next batch", color="accent", fontsize=9)
    box(ax, 0.2, 0.2, 3.3, 0.75, "model.eval()\nwith torch.no_grad(): accuracy", color="norm", fontsize=8, family=mono)
    arrow(ax, (0.9, 3.68), (0.9, 0.97))
    label(ax, 0.75, 2.3, "after the\nlast epoch", fontsize=9, ha="right")
    return fig


FIGURES = {"logistic-graph.svg": logistic_graph, "training-loop.svg": training_loop}

if __name__ == "__main__":
    main(FIGURES, __file__)
