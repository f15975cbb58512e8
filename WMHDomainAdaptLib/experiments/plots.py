"""The paper's two figures, drawn with matplotlib's Agg backend (no display needed).

(a) Dice on the target test set vs the number of target training scans (log x axis): the source
model as a horizontal line, scratch, and the best fine-tuned K at each N (error bars: SD over
draws). (b) Dice vs the number of tuned last layers, one curve per N; the first-layers
alternative, where run, as dashed curves.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from ..io import atomic_write  # noqa: E402
from .aggregate import Cell, Summary  # noqa: E402
from .grid import FINETUNE, FIRST_LAYERS  # noqa: E402

SCANS_FIGURE = "dice_vs_scans.png"
LAYERS_FIGURE = "dice_vs_layers.png"


def _errorbar(axes, cells: list[Cell], x: list[float], **style) -> None:
    axes.errorbar(x, [c.dice for c in cells], yerr=[0.0 if c.dice_sd != c.dice_sd else c.dice_sd
                                                    for c in cells], capsize=3, marker="o", **style)


def plot_dice_vs_scans(summary: Summary, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4.2))
    counts = summary.scan_counts()
    source = summary.source_dice()
    if source is not None:
        axes.axhline(source, color="grey", linestyle=":", label=f"source model ({source:.2f})")
    scratch = [summary.scratch(n) for n in counts]
    pairs = [(n, c) for n, c in zip(counts, scratch) if c is not None]
    if pairs:
        _errorbar(axes, [c for _, c in pairs], [n for n, _ in pairs], label="from scratch", color="C1")
    best = [summary.best(n) for n in counts]
    _errorbar(axes, best, counts, label="fine-tuned (best K)", color="C0")
    for n, cell in zip(counts, best):
        axes.annotate(f"K={cell.tune_layers}", (n, cell.dice), textcoords="offset points", xytext=(4, 6),
                      fontsize=8, color="C0")
    axes.set_xscale("log")
    axes.set_xticks(counts, [str(n) for n in counts])
    axes.set_xticks([], minor=True)  # no "3x10^0" minor labels between the measured N
    axes.set_xlabel("number of labelled target training scans N")
    axes.set_ylabel("mean Dice on the target test set")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    axes.set_title("(a) transfer vs from scratch")
    return _save(figure, path)


def plot_dice_vs_layers(summary: Summary, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4.2))
    for index, n in enumerate(summary.scan_counts()):
        curve = summary.curve(FINETUNE, n)
        _errorbar(axes, curve, [c.tune_layers for c in curve], label=f"N={n}", color=f"C{index}")
        first = summary.curve(FIRST_LAYERS, n)
        if first:
            axes.plot([c.tune_layers for c in first], [c.dice for c in first], linestyle="--", marker="s",
                      color=f"C{index}", label=f"N={n}, first K layers")
    ks = sorted(set(summary.layer_counts()) | set(summary.layer_counts(FIRST_LAYERS)))
    axes.set_xticks(ks, [str(k) for k in ks])
    axes.set_xlabel("number of tuned layers K (the last K of 15; dashed: the first K)")
    axes.set_ylabel("mean Dice on the target test set")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, ncol=2)
    axes.set_title("(b) how many layers to tune")
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=120, format="png"))
    plt.close(figure)
    return path


def write_plots(summary: Summary, folder: Path) -> list[Path]:
    return [plot_dice_vs_scans(summary, folder / SCANS_FIGURE),
            plot_dice_vs_layers(summary, folder / LAYERS_FIGURE)]
