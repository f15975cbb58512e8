"""The per-scan threshold rule: its contrast measure, its Dice curves, its fit, and its use."""

import numpy as np
import pytest

from WMHDomainAdaptLib.metrics import dice, evaluate_arrays
from WMHDomainAdaptLib.scan_threshold import (
    THRESHOLD_GRID,
    ScanEvidence,
    ScanThreshold,
    fit_scan_threshold,
    lesion_contrast,
    scan_evidence,
)


def test_rule_is_linear_in_contrast_clipped_and_rounded_to_the_grid():
    rule = ScanThreshold(intercept=0.1, slope=0.1, low=0.2, high=0.8)
    assert rule.for_contrast(3.0, fixed=0.5) == pytest.approx(0.4)
    assert rule.for_contrast(3.0444, fixed=0.5) == pytest.approx(0.40)
    assert rule.for_contrast(-5.0, fixed=0.5) == pytest.approx(0.2)
    assert rule.for_contrast(50.0, fixed=0.5) == pytest.approx(0.8)
    assert rule.for_contrast(None, fixed=0.45) == 0.45


def test_contrast_is_the_mean_flair_of_the_sure_voxels_and_undefined_when_they_are_few():
    probability = np.zeros((4, 8, 8), np.float32)
    flair = np.zeros_like(probability)
    probability[1, 2:4, 2:4], flair[1, 2:4, 2:4] = 0.9, 3.0   # 4 sure voxels at z = 3
    probability[2, 2:4, 2:4], flair[2, 2:4, 2:4] = 0.6, 1.0   # 4 unsure ones
    assert lesion_contrast(probability, flair, 0.7, min_core_voxels=4) == pytest.approx(3.0)
    assert lesion_contrast(probability, flair, 0.5, min_core_voxels=4) == pytest.approx(2.0)
    assert lesion_contrast(probability, flair, 0.7, min_core_voxels=5) is None
    rule = ScanThreshold(0.0, 0.2, core_probability=0.7, min_core_voxels=5)
    assert rule.for_scan(probability, flair, fixed=0.55) == 0.55


def test_evidence_holds_the_dice_of_each_grid_threshold():
    rng = np.random.default_rng(0)
    probability = rng.random((6, 20, 20)).astype(np.float32)
    lesion = probability + rng.normal(0, 0.3, probability.shape) > 0.8
    evidence = scan_evidence(probability, np.zeros_like(probability), lesion, 0.7, 10)
    for column in (0, 30, 45, 80):
        threshold = THRESHOLD_GRID[column]
        assert evidence.dice_at[column] == pytest.approx(dice(probability >= threshold, lesion))


def planted_evidence(intercept: float, slope: float, contrasts) -> list[ScanEvidence]:
    """Scans whose Dice peaks at intercept + slope * contrast and falls off linearly."""
    return [ScanEvidence(0.9 - np.abs(THRESHOLD_GRID - (intercept + slope * c)), c, 0.7, 10)
            for c in contrasts]


def test_fit_finds_a_planted_rule_and_reports_the_fixed_thresholds_dice():
    contrasts = np.arange(10) * 0.4 + 2.0  # peaks 0.20 to 0.74, on the grid
    fit = fit_scan_threshold(planted_evidence(-0.1, 0.15, contrasts), fixed=0.5)
    assert fit.rule.intercept == pytest.approx(-0.1) and fit.rule.slope == pytest.approx(0.15)
    assert fit.mean_dice_rule == pytest.approx(0.9)
    expected_fixed = np.mean([0.9 - abs(0.5 - (-0.1 + 0.15 * c)) for c in contrasts])
    assert fit.mean_dice_fixed == pytest.approx(expected_fixed)
    assert fit.scans == 10


def test_fit_keeps_the_fixed_threshold_for_scans_without_a_contrast():
    evidence = planted_evidence(0.0, 0.1, [3.0] * 10)
    evidence.append(ScanEvidence(np.where(THRESHOLD_GRID == 0.5, 1.0, 0.0), None, 0.7, 10))
    fit = fit_scan_threshold(evidence, fixed=0.5)
    assert fit.mean_dice_rule == pytest.approx((10 * 0.9 + 1.0) / 11)


def test_fit_refuses_scans_whose_contrast_was_measured_differently():
    evidence = planted_evidence(0.0, 0.1, [3.0, 4.0])
    evidence.append(ScanEvidence(evidence[0].dice_at, 3.0, 0.9, 10))
    with pytest.raises(ValueError, match="measured in different ways"):
        fit_scan_threshold(evidence, fixed=0.5)


def test_fit_refuses_a_fixed_threshold_off_its_grid():
    with pytest.raises(ValueError, match="outside the fitted range"):
        fit_scan_threshold(planted_evidence(0.0, 0.1, [3.0, 4.0]), fixed=0.02)


def test_the_fits_dice_ignores_other_pathology_as_the_challenge_does():
    """A label-2 region predicted at 0.9 must not count as a false positive (it did: 0.667, not 1)."""
    probability = np.zeros((4, 8, 8), np.float32)
    label = np.zeros((4, 8, 8), np.uint8)
    probability[1, 2:4, 2:4], label[1, 2:4, 2:4] = 0.9, 1  # a found lesion
    probability[2, 5:7, 5:7], label[2, 5:7, 5:7] = 0.9, 2  # "other pathology", also bright
    evidence = scan_evidence(probability, np.zeros_like(probability), label, 0.95, 10)
    column = int(np.flatnonzero(np.isclose(THRESHOLD_GRID, 0.5))[0])
    challenge = evaluate_arrays(probability >= 0.5, label, (1.0, 1.0, 1.0))["dsc"]
    assert evidence.dice_at[column] == pytest.approx(challenge) == pytest.approx(1.0)
