"""The paper's four findings, and the first-layers alternative, tested against the results.

Each check returns a verdict and the numbers behind it, computed from the table, so the report
says what this data supports, including when a finding does not hold or the grid cannot tell.
A difference smaller than the draw-to-draw SD is called "within noise".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..model import DEPTH
from .aggregate import Cell, Summary
from .grid import FINETUNE, FIRST_LAYERS

HOLDS, FAILS, PARTLY, UNKNOWN = "holds", "does not hold", "holds partly", "cannot tell"
LARGE_DROP = 1 / 3  # the benchmark recipe: the source model should lose a third of its Dice or more


@dataclass(frozen=True)
class Finding:
    title: str
    verdict: str
    evidence: str


def _noise(*cells: Cell) -> float:
    spreads = [c.dice_sd for c in cells if c is not None and not math.isnan(c.dice_sd)]
    return max(spreads) if spreads else math.nan


def _versus(difference: float, noise: float) -> str:
    if math.isnan(noise):
        return f"{difference:+.3f} (one draw: no spread measured)"
    return f"{difference:+.3f} ({'within' if abs(difference) <= noise else 'beyond'} the draw SD {noise:.3f})"


def source_drop(summary: Summary) -> Finding:
    title = "(i) the source model drops on the target"
    target, source = summary.source_dice("target_test"), summary.source_dice("source_test")
    if target is None:
        return Finding(title, UNKNOWN, "no source-model run on the target test set yet")
    if source is None:
        return Finding(title, UNKNOWN, f"Dice on the target test set {target:.3f}; no source_test "
                                       f"reference set configured to compare with")
    drop = (source - target) / source if source > 0 else math.nan
    verdict = HOLDS if drop >= LARGE_DROP else PARTLY if drop > 0 else FAILS
    return Finding(title, verdict, f"mean Dice {source:.3f} on source test vs {target:.3f} on target test: "
                                   f"a relative drop of {100 * drop:.0f}% (a third or more: holds)")


def transfer_beats_scratch(summary: Summary) -> Finding:
    title = "(ii) fine-tuning beats scratch at small N, and the gap closes as N grows"
    pairs = [(n, summary.best(n), summary.scratch(n)) for n in summary.scan_counts()]
    pairs = [(n, best, scratch) for n, best, scratch in pairs if scratch is not None]
    if not pairs:
        return Finding(title, UNKNOWN, "no scratch runs yet")
    gaps = [(n, best.dice - scratch.dice, _noise(best, scratch)) for n, best, scratch in pairs]
    text = "; ".join(f"N={n}: {_versus(gap, noise)}" for n, gap, noise in gaps)
    first_gap, last_gap = gaps[0][1], gaps[-1][1]
    beats = first_gap > 0
    closes = len(gaps) > 1 and last_gap < first_gap
    verdict = HOLDS if beats and closes else PARTLY if beats or closes else FAILS
    if len(gaps) == 1:
        verdict = HOLDS if beats else FAILS
        text += " (one N only: whether the gap closes cannot be told)"
    return Finding(title, verdict, f"best fine-tuned minus scratch, mean Dice: {text}")


def depth_grows_with_scans(summary: Summary) -> Finding:
    title = "(iii) the best number of tuned layers grows with N"
    best = summary.best_layers_by_scans()
    if len(best) < 2:
        return Finding(title, UNKNOWN, "needs at least two values of N")
    ks = [k for _, k in best]
    monotone = all(a <= b for a, b in zip(ks, ks[1:]))
    verdict = HOLDS if monotone and ks[-1] > ks[0] else PARTLY if ks[-1] > ks[0] else FAILS
    margins = []
    for n, k in best:
        others = [c for c in summary.curve(FINETUNE, n) if c.tune_layers != k]
        if others:
            runner_up = max(others, key=lambda c: c.dice)
            margins.append(f"N={n}: K={k}, {summary.best(n).dice - runner_up.dice:.3f} ahead of "
                           f"K={runner_up.tune_layers}")
    return Finding(title, verdict, "best K by N: " + "; ".join(margins))


def shallow_layers_rarely_help(summary: Summary) -> Finding:
    """Does tuning down to the shallowest layers (the largest K) beat stopping short of them?"""
    title = "(iv) tuning the shallowest layers rarely helps"
    layer_counts = summary.layer_counts()
    if len(layer_counts) < 2:
        return Finding(title, UNKNOWN, "needs at least two values of K")
    deepest = layer_counts[-1]
    wins, notes, count = 0, [], 0
    for n in summary.scan_counts():
        full = summary.cell(FINETUNE, n, deepest)
        others = [c for c in summary.curve(FINETUNE, n) if c.tune_layers < deepest]
        if full is None or not others:  # a half-finished grid
            continue
        count += 1
        shallower = max(others, key=lambda c: c.dice)
        difference = full.dice - shallower.dice
        wins += difference > 0
        notes.append(f"N={n}: K={deepest} vs best K<{deepest} (K={shallower.tune_layers}) "
                     f"{_versus(difference, _noise(full, shallower))}")
    if not count:
        return Finding(title, UNKNOWN, f"no N has both K={deepest} and a smaller K finished yet")
    verdict = HOLDS if wins <= count / 3 else PARTLY if wins < count else FAILS
    return Finding(title, verdict, f"tuning {deepest} of {DEPTH} layers was best at {wins} of {count} N: "
                                   + "; ".join(notes))


def first_versus_last(summary: Summary) -> Finding:
    title = "alternative: tune the first layers instead of the last (Shirokikh et al. 2020)"
    counts = summary.first_layer_counts()
    if not counts:
        return Finding(title, UNKNOWN, "no first-layers runs in this grid")
    wins, notes = 0, []
    for n in counts:
        first = summary.best(n, FIRST_LAYERS)
        last = summary.best(n)
        if last is None:
            notes.append(f"N={n}: first K={first.tune_layers} {first.dice:.3f}, no last-layers run")
            continue
        difference = first.dice - last.dice
        wins += difference > 0
        notes.append(f"N={n}: best first K={first.tune_layers} {first.dice:.3f} vs best last "
                     f"K={last.tune_layers} {last.dice:.3f}, {_versus(difference, _noise(first, last))}")
    verdict = ("first layers better" if wins == len(counts) else
               "last layers better" if wins == 0 else "mixed")
    return Finding(title, verdict, "; ".join(notes))


def all_findings(summary: Summary) -> list[Finding]:
    return [source_drop(summary), transfer_beats_scratch(summary), depth_grows_with_scans(summary),
            shallow_layers_rarely_help(summary), first_versus_last(summary)]
