"""Probability to mask: a model's cut, read once, applied in one place."""

import numpy as np
import pytest

from WMHDomainAdaptLib.decision import THRESHOLD_CANDIDATES, FixedCut, ScanRuleCut, cut_of, decide
from WMHDomainAdaptLib.scan_threshold import ScanThreshold


def probabilities() -> np.ndarray:
    probability = np.zeros((3, 6, 6), np.float32)
    probability[1, 1, 1] = 0.5  # exactly at the cut: included, as `segment` has always done
    probability[1, 1, 2] = np.nextafter(np.float32(0.5), np.float32(0))  # just under: excluded
    probability[1, 4:6, 4:6] = 0.9  # a 4-voxel lesion
    return probability


def test_a_fixed_cut_keeps_the_voxels_at_or_above_it_and_counts_their_lesions():
    eighth = (0.5, 0.5, 0.5)  # 0.125 mm3 voxels: the default keeps even a lesion of one of them
    decision = decide(probabilities(), np.zeros((3, 6, 6)), FixedCut(0.5), eighth)
    assert decision.threshold == 0.5 and decision.lesion_count == 2
    expected = np.zeros((3, 6, 6), bool)
    expected[1, 1, 1] = True
    expected[1, 4:6, 4:6] = True
    np.testing.assert_array_equal(decision.mask, expected)


def test_small_lesions_are_dropped_by_volume_before_counting():
    decision = decide(
        probabilities(), np.zeros((3, 6, 6)), FixedCut(0.5), (1.0, 1.0, 2.0), min_lesion_mm3=4.0
    )
    assert decision.lesion_count == 1 and decision.mask.sum() == 4


def test_a_calibrated_models_cut_follows_the_scans_contrast_and_an_uncalibrated_one_is_fixed():
    rule = ScanThreshold(intercept=0.1, slope=0.1, core_probability=0.8, min_core_voxels=4)
    assert cut_of({"threshold": 0.45}) == FixedCut(0.45)
    cut = cut_of({"threshold": 0.45, "scan_threshold": rule.to_dict()})
    assert cut == ScanRuleCut(rule, 0.45)
    flair = np.full((3, 6, 6), 4.0)  # the sure voxels' contrast: 4 -> threshold 0.1 + 0.4
    assert cut.threshold(probabilities(), flair) == pytest.approx(0.5)
    assert cut.threshold(np.zeros((3, 6, 6)), flair) == 0.45  # no sure voxel: the fixed one
    assert decide(probabilities(), flair, cut, (1.0, 1.0, 1.0)).threshold == pytest.approx(0.5)


def test_validation_chooses_among_the_documented_thresholds():
    """docs/model.md: 0.10 to 0.90 in steps of 0.05."""
    assert THRESHOLD_CANDIDATES.tolist() == [round(0.1 + 0.05 * i, 2) for i in range(17)]
