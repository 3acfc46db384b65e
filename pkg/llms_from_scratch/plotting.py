"""One visual style for the book's concept figures, and the runner every chapter's ``figures/draw.py`` uses.

Each chapter keeps its figure code beside its notebook (``chXX/01_main-chapter-code/figures/draw.py``). A script
declares its outputs in a ``FIGURES`` dict (file name -> drawing function returning a matplotlib figure) and ends
with ``plotting.main(FIGURES)``; ``make figures`` runs every script, and the notebook test runs them into a temporary
folder to check that each stored figure is one a script draws.

The SVGs are written deterministically (fixed hash salt, no date, text kept as text) so that regenerating an
unchanged figure changes no bytes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures go to files; the scripts never open a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

# A small palette, one meaning per colour across all chapters.
COLORS = {
    "text": "#e8eef7",  # raw text, tokens
    "ids": "#fde9c8",  # token ids, integers
    "embed": "#d7ecd9",  # vectors, embeddings
    "position": "#e6dcf2",  # positional information
    "attention": "#fbd5d5",  # attention: scores, weights, masks
    "norm": "#dbe9f6",  # normalisation layers
    "ffn": "#fff3bf",  # feed-forward and linear layers
    "neutral": "#f1f1f1",  # everything else
    "edge": "#3b3b3b",
    "accent": "#c0392b",  # what the figure wants the eye on
    "muted": "#8a8a8a",
}

FONT_SIZE = 11
DrawFn = Callable[[], Figure]


def apply_style() -> None:
    """Set the rc parameters every figure shares (font, sizes, deterministic SVG output)."""
    plt.rcParams.update(
        {
            "font.family": "DejaVu Sans",
            "font.size": FONT_SIZE,
            "axes.titlesize": FONT_SIZE + 1,
            "axes.titleweight": "bold",
            "svg.fonttype": "none",  # keep text as text: small files, searchable, crisp at any zoom
            "svg.hashsalt": "llms-from-scratch",  # stable element ids, so unchanged figures keep their bytes
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "savefig.pad_inches": 0.1,
        }
    )


def canvas(width: float, height: float, *, xlim: float | None = None, ylim: float | None = None) -> tuple[Figure, Axes]:
    """A blank figure whose data coordinates run from 0 to ``xlim``/``ylim`` (default: inches), axes hidden."""
    apply_style()
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, xlim if xlim is not None else width)
    ax.set_ylim(0, ylim if ylim is not None else height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def box(
    ax: Axes,
    x: float,
    y: float,
    w: float,
    h: float,
    text: str = "",
    *,
    color: str = "neutral",
    fontsize: float = FONT_SIZE,
    bold: bool = False,
    edge: str | None = None,
    family: str | None = None,
) -> FancyBboxPatch:
    """A rounded box with centred text; ``(x, y)`` is the lower-left corner, ``color`` a key of ``COLORS`` or a hex."""
    patch = FancyBboxPatch(
        (x, y),
        w,
        h,
        boxstyle="round,pad=0,rounding_size=0.06",
        facecolor=COLORS.get(color, color),
        edgecolor=COLORS.get(edge or "edge", edge),
        linewidth=1.1,
    )
    ax.add_patch(patch)
    if text:
        ax.text(
            x + w / 2,
            y + h / 2,
            text,
            ha="center",
            va="center",
            fontsize=fontsize,
            fontweight="bold" if bold else "normal",
            family=family,
        )
    return patch


def arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    color: str = "edge",
    style: str = "-|>",
    connection: str = "arc3",
    linestyle: str = "-",
) -> FancyArrowPatch:
    """An arrow from ``start`` to ``end``; ``connection`` is a matplotlib connection style (e.g. ``"arc3,rad=0.3"``)."""
    patch = FancyArrowPatch(
        start,
        end,
        arrowstyle=style,
        mutation_scale=12,
        color=COLORS.get(color, color),
        linewidth=1.2,
        connectionstyle=connection,
        linestyle=linestyle,
        shrinkA=1,
        shrinkB=1,
    )
    ax.add_patch(patch)
    return patch


def label(ax: Axes, x: float, y: float, text: str, *, color: str = "muted", **kwargs) -> None:
    """Small explanatory text, grey unless told otherwise."""
    kwargs.setdefault("ha", "center")
    kwargs.setdefault("va", "center")
    kwargs.setdefault("fontsize", FONT_SIZE - 1)
    ax.text(x, y, text, color=COLORS.get(color, color), **kwargs)


def grid(
    ax: Axes,
    x: float,
    y: float,
    values: Sequence[Sequence[float]],
    *,
    cell: float = 0.3,
    cmap: str = "Greens",
    vmin: float | None = None,
    vmax: float | None = None,
    masked: Iterable[tuple[int, int]] = (),
    annotate: bool = False,
    fmt: str = "{:.2f}",
) -> None:
    """A matrix drawn as coloured cells, row 0 at the top; ``masked`` cells are hatched grey (e.g. a causal mask)."""
    colormap = plt.get_cmap(cmap)
    flat = [v for row in values for v in row]
    lo = min(flat) if vmin is None else vmin
    hi = max(flat) if vmax is None else vmax
    span = (hi - lo) or 1.0
    hidden = set(masked)
    rows = len(values)
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            cx, cy = x + j * cell, y + (rows - 1 - i) * cell
            if (i, j) in hidden:
                ax.add_patch(plt.Rectangle((cx, cy), cell, cell, facecolor="#dddddd", edgecolor="white", hatch="///"))
                continue
            level = 0.15 + 0.75 * (value - lo) / span  # avoid the colormap's white and black ends
            ax.add_patch(plt.Rectangle((cx, cy), cell, cell, facecolor=colormap(level), edgecolor="white"))
            if annotate:
                ax.text(cx + cell / 2, cy + cell / 2, fmt.format(value), ha="center", va="center",
                        fontsize=FONT_SIZE - 3, color="white" if level > 0.7 else "black")  # readable on dark cells


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) without a timestamp, then close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Date": None} if path.suffix == ".svg" else {}
    fig.savefig(path, metadata=metadata)
    plt.close(fig)
    return path


def render(figures: dict[str, DrawFn], out_dir: Path, *, preview_png: bool = False) -> list[Path]:
    """Draw every figure into ``out_dir``; with ``preview_png`` also write a PNG beside each SVG for viewing."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in figures.items():
        fig = draw()
        if preview_png and name.endswith(".svg"):
            fig.savefig(out_dir / (Path(name).stem + ".preview.png"), dpi=110)
        written.append(save(fig, out_dir / name))
    return written


def main(figures: dict[str, DrawFn], script: str, argv: Sequence[str] | None = None) -> None:
    """Command line of a ``figures/draw.py``: draw into the script's folder, or ``--out DIR``; ``--list`` names them."""
    parser = argparse.ArgumentParser(description="Draw this chapter's concept figures.")
    parser.add_argument("--out", type=Path, default=Path(script).resolve().parent, help="folder to write into")
    parser.add_argument("--list", action="store_true", help="print the file names this script writes, then stop")
    parser.add_argument("--preview-png", action="store_true", help="also write a PNG of each SVG (for viewing)")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(figures))
        return
    for path in render(figures, args.out, preview_png=args.preview_png):
        print(path.name)


def stage_pipeline(stages: Sequence[tuple[str, str, Sequence[tuple[str, str]]]], *, stage_width: float = 3.6,
                   tag_prefix: str = "§") -> Figure:
    """Stages side by side, each a titled column of numbered steps; ``stages`` holds ``(title, color, steps)``.

    Each step is ``(text, tag)``; the tag (e.g. the section that carries the step out) is written to its right,
    after ``tag_prefix``, and left out when empty.
    """
    gap, step_h, pitch = 0.4, 0.5, 0.65
    rows = max(len(steps) for _, _, steps in stages)
    width = 0.4 + len(stages) * stage_width + (len(stages) - 1) * gap
    height = 1.3 + rows * pitch
    fig, ax = canvas(width, height)
    top = height - 0.8
    for k, (title, color, steps) in enumerate(stages):
        x = 0.2 + k * (stage_width + gap)
        box(ax, x, top, stage_width, 0.5, title, color=color, bold=True, fontsize=10)
        for j, (step, tag) in enumerate(steps):
            y = top - 0.8 - j * pitch
            box(ax, x + 0.15, y, stage_width - 0.9, step_h, step, color=color, fontsize=9)
            if tag:
                label(ax, x + stage_width - 0.38, y + step_h / 2, f"{tag_prefix}{tag}", fontsize=9)
        if k:
            arrow(ax, (x - gap + 0.02, top + 0.25), (x - 0.02, top + 0.25), color="accent")
    return fig
