"""Concept figures of appendix D. Run ``make figures`` (or this script) to redraw them into this folder."""

from __future__ import annotations

import math

from matplotlib.patches import Circle

from llms_from_scratch.appendix_d import warmup_cosine_lr
from llms_from_scratch.plotting import COLORS, Figure, apply_style, arrow, canvas, label, main

# the settings of section D.4's full run: 9 batches per epoch, 15 epochs, 20% warmup
STEPS_PER_EPOCH, EPOCHS = 9, 15
TOTAL_STEPS = STEPS_PER_EPOCH * EPOCHS
WARMUP_STEPS = int(0.2 * TOTAL_STEPS)
PEAK_LR, INITIAL_LR, MIN_LR = 1e-3, 1e-5, 1e-5


def lr_schedule() -> Figure:
    """Linear warmup to the peak, then half a cosine down to the minimum, with D.4's settings."""
    import matplotlib.pyplot as plt

    apply_style()
    lrs = [warmup_cosine_lr(s, WARMUP_STEPS, TOTAL_STEPS, PEAK_LR, INITIAL_LR, MIN_LR) for s in range(TOTAL_STEPS)]
    fig, ax = plt.subplots(figsize=(8.0, 3.6))
    ax.axvspan(0, WARMUP_STEPS, color=COLORS["ids"], alpha=0.6, linewidth=0)
    ax.axvspan(WARMUP_STEPS, TOTAL_STEPS - 1, color=COLORS["embed"], alpha=0.6, linewidth=0)
    ax.plot(range(TOTAL_STEPS), lrs, color=COLORS["accent"], linewidth=2)
    ax.set_xlim(0, TOTAL_STEPS - 1)
    ax.set_ylim(0, PEAK_LR * 1.15)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.text(WARMUP_STEPS / 2, PEAK_LR * 1.05, f"warmup\n{WARMUP_STEPS} steps", ha="center", va="center", fontsize=9)
    ax.text((WARMUP_STEPS + TOTAL_STEPS) / 2, PEAK_LR * 1.05, "cosine decay", ha="center", va="center", fontsize=9)
    ax.annotate(f"peak_lr = {PEAK_LR:g}", (WARMUP_STEPS, PEAK_LR), (WARMUP_STEPS + 8, PEAK_LR * 0.55),
                fontsize=9, arrowprops={"arrowstyle": "->", "color": COLORS["edge"]})
    ax.annotate(f"min_lr = {MIN_LR:g} at step {TOTAL_STEPS - 1}", (TOTAL_STEPS - 1, MIN_LR),
                (WARMUP_STEPS + 8, PEAK_LR * 0.08), fontsize=9, arrowprops={"arrowstyle": "->",
                                                                          "color": COLORS["edge"]})
    ax.set_title(f"{EPOCHS} epochs × {STEPS_PER_EPOCH} batches = {TOTAL_STEPS} steps; "
                 f"warmup from initial_lr = {INITIAL_LR:g}", fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def gradient_clipping() -> Figure:
    """clip_grad_norm_: a gradient longer than max_norm is scaled back onto the circle; its direction stays."""
    fig, ax = canvas(9.4, 4.8)
    max_norm = 1.0
    scale = 1.6  # inches per gradient unit
    origin = (2.0, 1.9)
    g = (1.8, 1.4)  # an example gradient of norm about 2.28
    norm = math.hypot(*g)
    clipped = (g[0] * max_norm / norm, g[1] * max_norm / norm)
    ax.add_patch(Circle(origin, max_norm * scale, fill=False, linestyle="--", edgecolor=COLORS["muted"]))
    tip = (origin[0] + g[0] * scale, origin[1] + g[1] * scale)
    tip_c = (origin[0] + clipped[0] * scale, origin[1] + clipped[1] * scale)
    arrow(ax, origin, tip, color="muted")
    arrow(ax, origin, tip_c, color="accent")
    label(ax, tip[0] + 0.1, tip[1] + 0.15, f"gradient g, ‖g‖ = {norm:.2f}", ha="left", fontsize=9, color="edge")
    label(ax, tip_c[0] + 0.15, tip_c[1] - 0.2, f"clipped: g · {max_norm:g} / {norm:.2f}", ha="left", fontsize=9,
          color="accent")
    label(ax, origin[0], origin[1] - 1.85, f"‖g‖ = max_norm = {max_norm:g}", fontsize=8.5)
    label(ax, 7.8, 3.6, "‖g‖ is the L2 norm of all gradients\nof the model taken together", fontsize=9,
          color="edge")
    label(ax, 7.8, 2.4, "if ‖g‖ > max_norm: every gradient\nis multiplied by max_norm / ‖g‖", fontsize=9)
    label(ax, 7.8, 1.3, "same direction, shorter step;\ngradients inside the circle\nare left unchanged", fontsize=9)
    return fig


FIGURES = {"lr-schedule.svg": lr_schedule, "gradient-clipping.svg": gradient_clipping}

if __name__ == "__main__":
    main(FIGURES, __file__)
