"""Concept figures of appendix A. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

import math

from matplotlib.patches import Circle

from llms_from_scratch.plotting import COLORS, Figure, arrow, box, canvas, grid, label, main

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


def pytorch_components() -> Figure:
    """Section A.1.1: the three parts of PyTorch, each building on the one below it."""
    fig, ax = canvas(10.6, 4.2)
    layers = [
        (0.3, "tensor library", "ids", "n-dimensional arrays with NumPy-like operations,\n"
         "on a CPU or a GPU  (torch.tensor, @, .to(\"cuda\"))"),
        (1.55, "automatic differentiation (autograd)", "attention", "records the operations on tensors and computes\n"
         "gradients by the chain rule  (loss.backward())"),
        (2.8, "deep-learning library", "ffn", "layers, losses, optimizers, data loading\n"
         "(torch.nn, torch.optim, torch.utils.data)"),
    ]
    for y, name, color, note in layers:
        box(ax, 0.3, y, 4.3, 0.9, name, color=color, bold=True, fontsize=10)
        label(ax, 4.9, y + 0.45, note, ha="left", fontsize=9, color="edge")
    for (y0, *_), (y1, *_) in zip(layers, layers[1:]):
        arrow(ax, (2.45, y0 + 0.92), (2.45, y1 - 0.02))
    label(ax, 2.45, 3.95, "each part builds on the one below it", fontsize=9)
    return fig


def supervised_workflow() -> Figure:
    """Section A.1.2: supervised learning trains a model on labelled examples, then predicts labels for new ones."""
    fig, ax = canvas(11.0, 4.3)
    label(ax, 0.3, 4.05, "1  training", ha="left", fontsize=10, color="edge", fontweight="bold")
    box(ax, 0.3, 2.6, 2.2, 1.0, "training examples\n(features)", color="text", fontsize=9)
    box(ax, 0.3, 1.5, 2.2, 0.7, "their labels", color="ids", fontsize=9)
    box(ax, 3.4, 2.6, 2.0, 1.0, "model\n(parameters)", color="ffn", fontsize=10)
    arrow(ax, (2.52, 3.1), (3.38, 3.1))
    box(ax, 6.2, 2.6, 1.8, 1.0, "predictions", color="neutral", fontsize=9)
    arrow(ax, (5.42, 3.1), (6.18, 3.1))
    box(ax, 6.2, 1.5, 1.8, 0.7, "loss", color="attention", fontsize=10)
    arrow(ax, (7.1, 2.58), (7.1, 2.22))
    arrow(ax, (2.52, 1.85), (6.18, 1.85))
    arrow(ax, (6.18, 1.7), (4.4, 2.58), color="accent", linestyle="--", connection="arc3,rad=-0.3")
    label(ax, 4.6, 1.35, "update the parameters to lower the loss", color="accent", fontsize=9)
    label(ax, 8.3, 4.05, "2  inference", ha="left", fontsize=10, color="edge", fontweight="bold")
    box(ax, 8.3, 3.1, 2.4, 0.6, "new example", color="text", fontsize=9)
    box(ax, 8.3, 2.0, 2.4, 0.7, "trained model\n(from step 1)", color="ffn", fontsize=9)
    box(ax, 8.3, 0.9, 2.4, 0.6, "predicted label", color="ids", fontsize=9)
    arrow(ax, (9.5, 3.08), (9.5, 2.72))
    arrow(ax, (9.5, 1.98), (9.5, 1.52))
    return fig


def tensor_ranks() -> Figure:
    """Section A.2.1: a scalar, a vector, a matrix and a 3D tensor, with their shapes."""
    fig, ax = canvas(11.0, 2.9)
    cell = 0.42
    style = {"cell": cell, "cmap": "Oranges", "vmin": 0, "vmax": 12, "annotate": True, "fmt": "{:.0f}"}
    grid(ax, 0.6, 1.0, [[1]], **style)
    grid(ax, 2.0, 1.0, [[1, 2, 3]], **style)
    grid(ax, 4.4, 0.8, [[1, 2], [3, 4]], **style)
    # a 3D tensor: a stack of two 2x2 matrices, indexed along the first dimension
    grid(ax, 6.6, 0.8, [[1, 2], [3, 4]], **style)
    grid(ax, 7.7, 0.8, [[5, 6], [7, 8]], **style)
    label(ax, 7.02, 0.55, "[0]", fontsize=8, family="DejaVu Sans Mono")
    label(ax, 8.12, 0.55, "[1]", fontsize=8, family="DejaVu Sans Mono")
    names = [(0.81, "0D tensor (scalar)", "shape ()"), (2.63, "1D tensor (vector)", "shape (3,)"),
             (4.82, "2D tensor (matrix)", "shape (2, 2)"), (7.57, "3D tensor", "shape (2, 2, 2)")]
    for x, name, shape in names:
        label(ax, x, 2.3, name, fontsize=10, color="edge")
        label(ax, x, 0.2, shape, fontsize=9, family="DejaVu Sans Mono")
    label(ax, 9.9, 1.25, "and so on:\na batch of token\nembeddings is\n(batch, tokens, dim)", fontsize=9)
    return fig


def mlp() -> Figure:
    """Section A.5: the multilayer perceptron with 50 inputs, hidden layers of 30 and 20 units, 3 outputs."""
    fig, ax = canvas(11.0, 5.4)
    columns = [(1.0, 7, "input\n50 features", "text"), (3.6, 6, "1st hidden\n30 units, ReLU", "ffn"),
               (6.2, 5, "2nd hidden\n20 units, ReLU", "ffn"), (8.8, 3, "output\n3 logits", "attention")]
    centers = []
    for x, n, name, color in columns:
        ys = [2.7 + (k - (n - 1) / 2) * 0.55 for k in range(n)]
        centers.append((x, ys))
        label(ax, x, 0.35, name, fontsize=9, color="edge")
        for k, y in enumerate(ys):
            dots = n > 3 and k == n // 2
            ax.add_patch(Circle((x, y), 0.17, facecolor="white" if dots else COLORS[color],
                                edgecolor="white" if dots else COLORS["edge"], linewidth=0.9, zorder=3))
            if dots:
                ax.text(x, y, "⋮", ha="center", va="center", fontsize=12, zorder=4)
    for (x0, ys0), (x1, ys1) in zip(centers, centers[1:]):
        for k0, y0 in enumerate(ys0):
            for k1, y1 in enumerate(ys1):
                if k0 == len(ys0) // 2 and len(ys0) > 3 or k1 == len(ys1) // 2 and len(ys1) > 3:
                    continue
                ax.plot([x0 + 0.17, x1 - 0.17], [y0, y1], color=COLORS["muted"], linewidth=0.4, zorder=1)
    layers = [(2.3, "Linear(50, 30)\n50·30 + 30 = 1,530"), (4.9, "Linear(30, 20)\n30·20 + 20 = 620"),
              (7.5, "Linear(20, 3)\n20·3 + 3 = 63")]
    for x, text in layers:
        label(ax, x, 5.05, text, fontsize=9, color="edge", family="DejaVu Sans Mono")
    label(ax, 10.0, 2.7, "2,213\ntrainable\nparameters", fontsize=10, color="accent")
    return fig


def data_parallel() -> Figure:
    """Section A.9.3: DDP splits each global batch across processes and averages their gradients every step."""
    fig, ax = canvas(11.0, 5.8)
    box(ax, 0.2, 2.35, 1.9, 1.1, "global batch\n(8 examples)", color="text", fontsize=9)
    for k, y in enumerate((3.7, 0.9)):
        rank = f"rank {k} (GPU {k})"
        label(ax, 3.95, y + 1.35, rank, fontsize=10, color="edge", fontweight="bold")
        box(ax, 2.6, y, 1.5, 0.9, "4 examples\n(sampler)", color="text", fontsize=9)
        box(ax, 4.5, y, 1.6, 0.9, "model copy\nforward, loss", color="ffn", fontsize=9)
        box(ax, 6.5, y, 1.5, 0.9, "backward:\nlocal grads", color="attention", fontsize=9)
        box(ax, 9.2, y, 1.6, 0.9, "optimizer.step()\n(same update)", color="embed", fontsize=9)
        arrow(ax, (2.12, 2.9), (2.58, y + 0.45))
        arrow(ax, (4.12, y + 0.45), (4.48, y + 0.45))
        arrow(ax, (6.12, y + 0.45), (6.48, y + 0.45))
        arrow(ax, (8.02, y + 0.45), (8.35, 2.9 + (0.15 if k == 0 else -0.15)), color="accent")
        arrow(ax, (8.75, 2.9 + (0.15 if k == 0 else -0.15)), (9.18, y + 0.45), color="accent")
    box(ax, 8.05, 2.45, 1.0, 0.9, "all-\nreduce:\nmean", color="attention", fontsize=8, edge="accent")
    label(ax, 5.5, 0.35, "every process ends each step with the average gradient of the whole global batch, "
          "so the copies stay identical", fontsize=9)
    return fig


FIGURES = {
    "pytorch-components.svg": pytorch_components,
    "supervised-workflow.svg": supervised_workflow,
    "tensor-ranks.svg": tensor_ranks,
    "logistic-graph.svg": logistic_graph,
    "mlp.svg": mlp,
    "training-loop.svg": training_loop,
    "data-parallel.svg": data_parallel,
}

if __name__ == "__main__":
    main(FIGURES, __file__)
