"""Probability to mask, in one place: how a threshold is chosen, how it is applied, what a Dice is.

Every consumer (training and adaptation choosing a threshold on validation data, `calibrate`
fitting a per-scan rule, `segment`, the study's evaluation, the Slicer module through the
library) goes through this module, as nnU-Net's consumers go through one label manager:

- a `Cut` says at which probability one scan is cut: `FixedCut` (the model's threshold) or
  `ScanRuleCut` (a calibrated model's per-scan rule, `scan_threshold.py`). A model file's cut is
  read once, when it is loaded (`cut_of`).
- `decide` applies a cut: threshold, small-lesion removal, volume and lesion count (one pass of
  connected components).
- `best_threshold` chooses a fixed threshold by pooled Dice on validation data; the Dice it
  maximizes (`metrics.pooled_dice`, and `metrics.dice_curve` for the per-scan fit) ignores
  label 2 ("other pathology"), as the WMH challenge does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .lesions import without_small_lesions
from .metrics import pooled_dice
from .scan_threshold import ScanThreshold

THRESHOLD_CANDIDATES = np.round(np.arange(0.1, 0.91, 0.05), 2)  # what validation chooses among


class Cut(Protocol):
    fixed: float  # the model's fixed threshold (the rule's fallback)

    def threshold(self, probability: np.ndarray, flair: np.ndarray) -> float:
        """The probability at which this scan is cut (`flair`: its normalized FLAIR channel)."""


@dataclass(frozen=True)
class FixedCut:
    fixed: float

    def threshold(self, probability: np.ndarray, flair: np.ndarray) -> float:
        return self.fixed


@dataclass(frozen=True)
class ScanRuleCut:
    rule: ScanThreshold
    fixed: float  # for a scan with too few sure lesion voxels to measure its contrast

    def threshold(self, probability: np.ndarray, flair: np.ndarray) -> float:
        return self.rule.for_scan(probability, flair, self.fixed)


def cut_of(metadata: dict) -> FixedCut | ScanRuleCut:
    """A model file's cut: its per-scan rule where it was calibrated, else its fixed threshold."""
    fixed = float(metadata["threshold"])
    rule = metadata.get("scan_threshold")
    return FixedCut(fixed) if rule is None else ScanRuleCut(ScanThreshold.from_dict(rule), fixed)


@dataclass(frozen=True)
class Decision:
    mask: np.ndarray  # (z, y, x) bool
    threshold: float
    lesion_count: int


def decide(probability: np.ndarray, flair: np.ndarray, cut: Cut, spacing_xyz,
           min_lesion_mm3: float = 0.0) -> Decision:
    """Cut one scan's probabilities into a mask, drop lesions under `min_lesion_mm3`, count them."""
    threshold = cut.threshold(probability, flair)
    mask, count = without_small_lesions(probability >= threshold, spacing_xyz, min_lesion_mm3)
    return Decision(mask, threshold, count)


def best_threshold(probabilities: list[np.ndarray], labels: list[np.ndarray]) -> tuple[float, float]:
    """The candidate threshold maximizing pooled Dice, and that Dice."""
    scores = [pooled_dice(probabilities, labels, t) for t in THRESHOLD_CANDIDATES]
    best = int(np.argmax(scores))
    return float(THRESHOLD_CANDIDATES[best]), float(scores[best])
