"""Concept figures of the reward-model notebook. Run ``make figures`` (or this script) to redraw them here."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main

PROMPT = ["Fix:", "He", "go", "...", "Answer:"]
ANSWERS = {"chosen": ["He", "goes", "."], "rejected": ["He", "goes", "stupid", "."]}
WIDTH = 9  # slots per row: the longer text fills them all, the shorter one is padded on the right


def reward_model() -> Figure:
    """Two texts of a preference pair through one decoder; the head reads each at its last real token."""
    fig, ax = canvas(13.0, 6.4)
    step, w, x0 = 1.0, 0.9, 1.4
    heads = {}
    for row, (name, answer) in enumerate(ANSWERS.items()):
        y = 3.55 - row * 2.75
        tokens = PROMPT + answer
        last = len(tokens) - 1
        label(ax, 0.2, y + 0.22, name, fontsize=10, color="edge", fontweight="bold", ha="left", va="center")
        for k in range(WIDTH):
            x = x0 + k * step
            real = k < len(tokens)
            if real:
                box(ax, x, y, w, 0.45, tokens[k], color="text", fontsize=8)
            else:
                box(ax, x, y, w, 0.45, "pad", color="neutral", fontsize=8, edge="muted")
            arrow(ax, (x + w / 2, y + 0.47), (x + w / 2, y + 0.8), color="muted")
            box(ax, x, y + 0.82, w, 0.42, f"h{k}" if real else "(ignored)", color="embed" if real else "neutral",
                fontsize=8 if real else 7, edge="accent" if k == last else ("muted" if not real else None))
        xl = x0 + last * step
        box(ax, xl - 0.05, y + 1.55, w + 0.1, 0.45, f"r_{name[0]}", color="ffn", fontsize=9, edge="accent")
        arrow(ax, (xl + w / 2, y + 1.26), (xl + w / 2, y + 1.53), color="accent")
        heads[name] = (xl + w + 0.05, y + 1.77)
    label(ax, x0, 3.05, "one causal decoder for both; its LM head is replaced by a linear head to one number, "
          "read at the last real token", fontsize=8.5,
          ha="left")
    label(ax, x0, 0.2, "right padding: no real token attends to a pad after it and positions start at 0, "
          "so neither the pad side nor the pad id changes r", fontsize=8.5, ha="left")
    box(ax, 10.8, 2.35, 2.1, 1.1, "loss =\n-log sigmoid(r_c - r_r\n- margin)", color="attention", fontsize=8.5)
    arrow(ax, heads["chosen"], (11.6, 3.47), color="accent")
    arrow(ax, heads["rejected"], (11.6, 2.33), color="accent")
    return fig


FIGURES = {"reward_model.svg": reward_model}

if __name__ == "__main__":
    main(FIGURES, __file__)
