"""Concept figure of the PPO bonus notebook. Run ``make figures`` (or this script) to redraw it into this folder."""

from __future__ import annotations

from llms_from_scratch.plotting import Figure, arrow, box, canvas, label, main

# one rollout of the addition task: the prompt and a completion of three real tokens and one padding slot
PROMPT = "12+45="
TOKENS = ["5", "7", "<eos>"]
TOKEN_X = [6.9, 7.75, 8.6]  # left edge of each completion column
PAD_X = 9.45
CELL_W, CELL_H = 0.78, 0.55


def _row(ax, y: float, texts: list[str], color: str, *, last_color: str | None = None, fontsize: float = 9.0) -> None:
    """One box per completion token, plus a hatched-looking padding slot that carries nothing."""
    for i, (x, text) in enumerate(zip(TOKEN_X, texts)):
        fill = last_color if (last_color and i == len(texts) - 1) else color
        box(ax, x, y, CELL_W, CELL_H, text, color=fill, fontsize=fontsize)
    box(ax, PAD_X, y, CELL_W, CELL_H, "pad", color="#ffffff", edge="muted", fontsize=8)


def ppo_overview() -> Figure:
    """One PPO step: rollout, values, per-token KL reward with the score on the last real token, GAE, losses."""
    fig, ax = canvas(13.4, 6.6)
    # the model: one transformer, two heads
    box(ax, 0.2, 4.5, 1.5, 0.8, f"prompt\n{PROMPT}", color="text", fontsize=9.5, family="DejaVu Sans Mono")
    box(ax, 2.3, 4.1, 1.9, 1.6, "policy\n(shared\ntransformer)", color="ffn", fontsize=9.5)
    arrow(ax, (1.7, 4.9), (2.3, 4.9))
    box(ax, 4.7, 5.05, 1.5, 0.65, "LM head\n$\\pi_\\theta$", color="ffn", fontsize=9)
    box(ax, 4.7, 4.1, 1.5, 0.65, "value head\n$V(s_t)$", color="norm", fontsize=9)
    arrow(ax, (4.2, 5.2), (4.7, 5.37))
    arrow(ax, (4.2, 4.6), (4.7, 4.42))
    box(ax, 2.75, 1.75, 2.3, 0.95, "reference $\\pi_{ref}$\n(frozen SFT copy)", color="neutral", fontsize=9)

    # the rollout and what is computed for each of its tokens
    label(ax, 8.2, 6.25, "one sampled completion (right-padded)", fontsize=9, color="edge")
    _row(ax, 5.1, TOKENS, "ids", fontsize=9.5)
    arrow(ax, (6.2, 5.37), (TOKEN_X[0], 5.37))
    _row(ax, 4.15, ["$V_1$", "$V_2$", "$V_3$"], "norm")
    arrow(ax, (6.2, 4.42), (TOKEN_X[0], 4.42))
    _row(ax, 3.1, ["$-\\beta KL_1$", "$-\\beta KL_2$", "$-\\beta KL_3$"], "attention", fontsize=8)
    arrow(ax, (5.05, 2.45), (TOKEN_X[0], 3.3), connection="arc3,rad=-0.15")
    label(ax, 3.9, 1.35, "$KL_t = \\log\\pi_\\theta(y_t) - \\log\\pi_{ref}(y_t)$", fontsize=8.5)
    _row(ax, 2.15, ["0", "0", "+score"], "neutral", last_color="embed", fontsize=8.5)
    label(ax, 7.75, 1.55, "score on the last real token:\n1 if the sum is right, else 0;\n"
          "minus 1 if no <eos> was written", fontsize=8, color="accent")
    label(ax, 6.65, 2.9, "+", fontsize=14, color="edge")  # the two rows add up to the per-token reward

    # advantages and the losses
    box(ax, 11.3, 3.6, 1.95, 1.6, "GAE\n$\\delta_t = r_t + \\gamma V_{t+1} - V_t$\n"
        "$A_t = \\delta_t + \\gamma\\lambda A_{t+1}$\nthen whiten $A$", color="position", fontsize=8.5)
    arrow(ax, (10.25, 4.42), (11.3, 4.42))
    arrow(ax, (10.3, 2.9), (11.3, 3.85))
    label(ax, 10.65, 3.55, "$r_t$", fontsize=10, color="edge")
    box(ax, 11.3, 0.45, 1.95, 2.0, "clipped\npolicy loss\n+ $c_v\\,\\times$ clipped\nvalue loss\n"
        "(4 epochs of\nminibatches)", color="attention", fontsize=8.5)
    arrow(ax, (12.55, 3.6), (12.55, 2.45))
    label(ax, 12.95, 3.0, "$A_t$,\n$R_t$", fontsize=8)
    # the update flows back into the shared transformer (both heads learn)
    arrow(ax, (11.3, 0.75), (2.5, 4.1), connection="angle,angleA=180,angleB=-90,rad=0", color="accent",
          linestyle="--")
    label(ax, 7.0, 0.5, "update $\\theta$: policy and value head together", fontsize=8.5, color="accent")
    return fig


FIGURES = {"ppo-overview.svg": ppo_overview}

if __name__ == "__main__":
    main(FIGURES, __file__)
