"""Concept figure of the GRPO bonus notebook. Run ``make figures`` (or this script) to redraw it into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main

# one group of the addition task: the prompt, four sampled completions and their exact-match rewards
PROMPT = "12+45="
SAMPLES = [("57<eos>", 1), ("47<eos>", 0), ("57<eos>", 1), ("5<eos>", 0)]


def grpo_overview() -> Figure:
    """One GRPO step: G samples per prompt, rewards, group-normalised advantages, clipped update with a KL."""
    fig, ax = canvas(13.0, 6.2)
    box(ax, 0.2, 2.7, 1.7, 0.8, f"prompt\n{PROMPT}", color="text", fontsize=10, family="DejaVu Sans Mono")
    box(ax, 2.4, 2.5, 1.7, 1.2, "policy\n$\\pi_\\theta$\n(sample G)", color="ffn", fontsize=10)
    arrow(ax, (1.9, 3.1), (2.4, 3.1))
    mean = sum(r for _, r in SAMPLES) / len(SAMPLES)
    std = (sum((r - mean) ** 2 for _, r in SAMPLES) / (len(SAMPLES) - 1)) ** 0.5
    label(ax, 5.5, 5.55, "G completions", fontsize=9.5, color="edge")
    label(ax, 7.75, 5.55, "reward", fontsize=9.5, color="edge")
    label(ax, 9.7, 5.55, "advantage\n$(r - \\bar r)\\,/\\,\\sigma$", fontsize=9.5, color="edge")
    for i, (text, reward) in enumerate(SAMPLES):
        y = 4.5 - i * 1.0
        box(ax, 4.7, y, 1.6, 0.65, text, color="ids", fontsize=9.5, family="DejaVu Sans Mono")
        arrow(ax, (4.1, 3.1), (4.7, y + 0.32), connection="arc3,rad=0.0")
        box(ax, 7.3, y, 0.9, 0.65, str(reward), color="embed" if reward else "attention", fontsize=10)
        arrow(ax, (6.3, y + 0.32), (7.3, y + 0.32))
        advantage = (reward - mean) / std
        box(ax, 9.1, y, 1.2, 0.65, f"{advantage:+.2f}", color="neutral", fontsize=10)
        arrow(ax, (8.2, y + 0.32), (9.1, y + 0.32))
    label(ax, 7.75, 0.75, "exact match:\n1 if the sum is\nright, else 0", fontsize=8.5)
    label(ax, 9.7, 0.75, f"group mean {mean:.2f}\nstd {std:.2f}\n(no value model)", fontsize=8.5, color="accent")
    box(ax, 10.9, 2.35, 2.0, 1.5, "clipped update\nper token\n$-\\,\\beta\\,$KL to $\\pi_{ref}$", color="norm",
        fontsize=9.5)
    for i in range(len(SAMPLES)):
        arrow(ax, (10.3, 4.82 - i * 1.0), (10.9, 3.1))
    label(ax, 11.9, 1.75, "every token of a\ncompletion shares\nits advantage", fontsize=8.5)
    return fig


FIGURES = {"grpo-overview.svg": grpo_overview}

if __name__ == "__main__":
    main(FIGURES, __file__)
