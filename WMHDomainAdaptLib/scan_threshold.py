"""A per-scan probability threshold set by the scan's own lesion contrast.

Why: how bright a lesion is on FLAIR differs between subjects (its T2 does), and a reference
label marks a 6 mm slab voxel as lesion where over half of the slab is. Whether a partial-volume
voxel at a lesion's edge holds half a lesion depends on how bright the whole lesion would be,
which a 2D network with an 81-voxel view cannot tell for a small lesion. The scan's surest lesion
voxels show it: where they are bright, a voxel of a given brightness holds less lesion, so the
threshold should rise. On v14's probabilities for 60 source scans the best threshold of each
scan correlated 0.7 with the mean FLAIR z-score of its voxels above probability 0.7 (the shipped
rule reads those at 0.95 or more, the core that cross-validation chose; docs/model.md).

The rule is linear in that contrast, clipped, and fitted by mean Dice on labelled scans
(`wmhda calibrate`). A scan with too few sure voxels keeps the model's fixed threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .metrics import dice_curve

# Candidate thresholds of the fit; the rule's thresholds are rounded to the same step.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)
INTERCEPTS = np.round(np.arange(-0.60, 0.701, 0.01), 2)
SLOPES = np.round(np.arange(0.00, 0.301, 0.01), 2)


@dataclass(frozen=True)
class ScanThreshold:
    """threshold = clip(intercept + slope * contrast, low, high), to the nearest 0.01."""

    intercept: float
    slope: float
    core_probability: float = 0.95  # a scan's contrast: mean FLAIR z of voxels at least this sure
    min_core_voxels: int = 10       # fewer such voxels: the fixed threshold
    low: float = 0.2
    high: float = 0.8

    def for_contrast(self, contrast: float | None, fixed: float) -> float:
        if contrast is None:
            return fixed
        return float(rule_thresholds(self.intercept, self.slope, contrast, self.low, self.high))

    def for_scan(self, probability: np.ndarray, flair: np.ndarray, fixed: float) -> float:
        """The threshold for one scan: probability and normalized FLAIR on the same grid."""
        return self.for_contrast(lesion_contrast(probability, flair, self.core_probability,
                                                 self.min_core_voxels), fixed)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ScanThreshold:
        """Raises TypeError or ValueError for missing, unknown or non-numeric fields."""
        fields = cls(0.0, 0.0).to_dict()
        if set(values) - set(fields) or not {"intercept", "slope"} <= set(values):
            raise TypeError(f"expected the fields {sorted(fields)} (intercept and slope required), "
                            f"got {sorted(values)}")
        merged = {**fields, **values}
        return cls(*(type(fields[name])(merged[name]) for name in fields))


def lesion_contrast(probability: np.ndarray, flair: np.ndarray, core_probability: float,
                    min_core_voxels: int) -> float | None:
    """Mean FLAIR z-score of the voxels the model is surest are lesion; None if too few."""
    core = probability >= core_probability
    if core.sum() < min_core_voxels:
        return None
    return float(flair[core].mean())


def rule_thresholds(intercept, slope, contrast, low: float, high: float):
    """clip(intercept + slope * contrast, low, high) to the grid's step, so that the rule applies
    exactly the thresholds it was fitted on; broadcasts over arrays for the fit."""
    return np.round(np.clip(intercept + slope * contrast, low, high), 2)


@dataclass(frozen=True)
class ScanEvidence:
    """What the fit needs of one labelled scan: its Dice at each grid threshold and its contrast."""

    dice_at: np.ndarray       # Dice at THRESHOLD_GRID
    contrast: float | None
    core_probability: float   # how the contrast was measured
    min_core_voxels: int


def scan_evidence(probability: np.ndarray, flair: np.ndarray, label: np.ndarray,
                  core_probability: float, min_core_voxels: int) -> ScanEvidence:
    """Reduce one scan to its evidence, so that a fit over hundreds of scans holds no volumes.

    `label`: 1 lesion, 2 other pathology (ignored by the Dice, as in the WMH challenge)."""
    dice_at = dice_curve(probability, label, THRESHOLD_GRID)
    contrast = lesion_contrast(probability, flair, core_probability, min_core_voxels)
    return ScanEvidence(dice_at, contrast, core_probability, min_core_voxels)


@dataclass(frozen=True)
class ScanThresholdFit:
    rule: ScanThreshold
    mean_dice_fixed: float   # over the fitted scans, at the model's fixed threshold
    mean_dice_rule: float    # the same scans under the rule (in sample)
    scans: int


def _grid_column(thresholds: np.ndarray) -> np.ndarray:
    """Columns of THRESHOLD_GRID for thresholds already on its step."""
    return np.rint((thresholds - THRESHOLD_GRID[0]) / 0.01).astype(int)


def fit_scan_threshold(evidence: list[ScanEvidence], fixed: float) -> ScanThresholdFit:
    """The intercept and slope maximizing mean Dice over the scans (a grid search, 0.01 steps).

    Mean Dice rather than pooled: it is the figure a user's scans are judged by, and pooling
    would let the few scans with large lesion loads choose the rule for everyone.
    """
    if not evidence:
        raise ValueError("no scans to fit a per-scan threshold on")
    if not THRESHOLD_GRID[0] <= fixed <= THRESHOLD_GRID[-1]:
        raise ValueError(f"the fixed threshold {fixed} is outside the fitted range "
                         f"{THRESHOLD_GRID[0]} to {THRESHOLD_GRID[-1]}")
    measures = {(scan.core_probability, scan.min_core_voxels) for scan in evidence}
    if len(measures) > 1:
        raise ValueError(f"the scans' contrasts were measured in different ways: {sorted(measures)}")
    core_probability, min_core_voxels = measures.pop()
    dice = np.stack([scan.dice_at for scan in evidence])
    rows = np.arange(len(evidence))
    known = np.array([scan.contrast is not None for scan in evidence])
    contrast = np.array([scan.contrast if scan.contrast is not None else 0.0 for scan in evidence])
    fixed_column = _grid_column(np.round(fixed, 2))
    bounds = ScanThreshold(0.0, 0.0)
    best = (-1.0, 0.0, 0.0)
    for slope in SLOPES:
        thresholds = rule_thresholds(INTERCEPTS[:, None], slope, contrast[None, :], bounds.low, bounds.high)
        columns = np.where(known[None, :], _grid_column(thresholds), fixed_column)
        means = dice[rows[None, :], columns].mean(axis=1)
        index = int(np.argmax(means))
        if means[index] > best[0]:
            best = (float(means[index]), float(INTERCEPTS[index]), float(slope))
    rule = ScanThreshold(best[1], best[2], core_probability, min_core_voxels)
    return ScanThresholdFit(rule, float(dice[:, fixed_column].mean()), best[0], len(evidence))
