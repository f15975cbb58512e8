"""From run rows to the numbers the report and the plots show: draws averaged, best K per N.

The report and the plots read the CSV only, never the runner's memory, so they can be rebuilt
from a finished (or half-finished) results folder at any time and always agree with the table.
Runs are compared by the mean over draws of each run's mean test Dice (the paper's measure);
the spread over draws is the standard deviation of those run means.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .grid import FINETUNE, FIRST_LAYERS, REFERENCE_PREFIX, SCRATCH, SOURCE


def number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class Cell:
    """One (setting, N, K) point: Dice summaries over its draws."""

    setting: str
    n_scans: int
    tune_layers: int
    draws: int
    dice: float          # mean over draws of the run's mean Dice
    dice_sd: float       # SD over draws (NaN with one draw)
    median: float        # mean over draws of the run's median Dice
    pooled: float        # mean over draws of the run's pooled Dice
    seconds: float       # mean wall time of a run


def cells(rows: list[dict]) -> dict[tuple[str, int, int], Cell]:
    groups: dict[tuple[str, int, int], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["setting"], int(row["n_scans"]), int(row["tune_layers"]))].append(row)
    result = {}
    for key, group in groups.items():
        dice = [number(r["dsc_mean"]) for r in group]
        result[key] = Cell(*key, len(group), float(np.mean(dice)),
                           float(np.std(dice, ddof=1)) if len(dice) > 1 else math.nan,
                           float(np.mean([number(r["dsc_median"]) for r in group])),
                           float(np.mean([number(r["dsc_pooled"]) for r in group])),
                           float(np.mean([number(r["wall_s"]) for r in group])))
    return result


@dataclass
class Summary:
    """All aggregated views of one results table."""

    rows: list[dict]
    cells: dict[tuple[str, int, int], Cell]

    def source_rows(self) -> list[dict]:
        return [r for r in self.rows if r["setting"] == SOURCE or r["setting"].startswith(REFERENCE_PREFIX)]

    def source_dice(self, test_set: str = "target_test") -> float | None:
        for row in self.source_rows():
            if row["test_set"] == test_set:
                return number(row["dsc_mean"])
        return None

    def scan_counts(self, setting: str = FINETUNE) -> list[int]:
        return sorted({n for s, n, _ in self.cells if s == setting})

    def layer_counts(self, setting: str = FINETUNE) -> list[int]:
        return sorted({k for s, _, k in self.cells if s == setting})

    def cell(self, setting: str, n_scans: int, tune_layers: int) -> Cell | None:
        return self.cells.get((setting, n_scans, tune_layers))

    def curve(self, setting: str, n_scans: int) -> list[Cell]:
        """Cells of one N over K, in increasing K."""
        return sorted((c for c in self.cells.values() if c.setting == setting and c.n_scans == n_scans),
                      key=lambda c: c.tune_layers)

    def best(self, n_scans: int, setting: str = FINETUNE) -> Cell | None:
        """The best K at N (ties: the smaller K, which is cheaper and less prone to overfit)."""
        curve = self.curve(setting, n_scans)
        return max(curve, key=lambda c: (c.dice, -c.tune_layers)) if curve else None

    def scratch(self, n_scans: int) -> Cell | None:
        curve = self.curve(SCRATCH, n_scans)
        return curve[0] if curve else None

    def best_layers_by_scans(self) -> list[tuple[int, int]]:
        return [(n, self.best(n).tune_layers) for n in self.scan_counts()]

    def first_layer_counts(self) -> list[int]:
        return self.scan_counts(FIRST_LAYERS)


def summarize_rows(rows: list[dict]) -> Summary:
    return Summary(rows, cells([r for r in rows if int(r["n_scans"]) > 0]))


def proposed_table(best: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """TUNE_LAYERS_BY_SCANS from measured best K per N: each measured N is an upper bound.

    A running maximum makes the rule monotone (more scans never tune fewer layers), the paper's
    finding; the report shows the raw best K beside it so a non-monotone result stays visible.
    The last measured K also serves any N beyond the grid.
    """
    table, running = [], 0
    for n, k in best:
        running = max(running, k)
        table.append((n, running))
    if table:
        table[-1] = (10**9, table[-1][1])
    merged: list[tuple[int, int]] = []
    for n, k in table:  # consecutive bounds with the same K collapse to the larger bound
        if merged and merged[-1][1] == k:
            merged[-1] = (n, k)
        else:
            merged.append((n, k))
    return tuple(merged)
