"""What a lesion is: 26-connected components, counted once, small ones dropped by volume."""

import numpy as np
import pytest

from WMHDomainAdaptLib.lesions import components, lesion_statistics, without_small_lesions


def two_lesions_touching_at_a_corner_and_one_apart() -> np.ndarray:
    mask = np.zeros((6, 8, 8), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # corner neighbours: one 26-connected lesion
    mask[4, 5:8, 5:8] = True  # 9 voxels
    return mask


def test_corner_neighbours_are_one_lesion_and_the_volume_follows_the_spacing():
    statistics = lesion_statistics(two_lesions_touching_at_a_corner_and_one_apart(), (0.5, 1.0, 2.0))
    assert statistics.count == 2
    assert statistics.volume_ml == pytest.approx(11 * 1.0 / 1000)
    assert lesion_statistics(np.zeros((3, 3, 3)), (1, 1, 1)).count == 0


def test_small_lesions_are_dropped_by_volume_and_the_count_is_of_what_is_kept():
    mask = two_lesions_touching_at_a_corner_and_one_apart()
    kept, count = without_small_lesions(mask, (1.0, 1.0, 1.0), min_volume_mm3=3.0)
    assert count == 1 == components(kept)[1] and kept.sum() == 9
    same, count = without_small_lesions(mask, (1.0, 1.0, 1.0), min_volume_mm3=0.0)
    assert same is not None and np.array_equal(same, mask) and count == 2


def test_volume_is_voxels_times_the_voxel_volume_for_any_spacing():
    statistics = lesion_statistics(two_lesions_touching_at_a_corner_and_one_apart(), (0.5, 1.2, 3.0))
    assert statistics.volume_ml == pytest.approx(11 * 1.8 / 1000)


def test_the_minimum_volume_is_in_mm3_and_a_lesion_of_exactly_that_volume_is_kept():
    mask = two_lesions_touching_at_a_corner_and_one_apart()  # 2 and 9 voxels
    eighth = (0.5, 0.5, 0.5)  # 0.125 mm3 a voxel, exactly
    kept, count = without_small_lesions(mask, eighth, min_volume_mm3=9 * 0.125)
    assert count == 1 and kept.sum() == 9
    kept, count = without_small_lesions(mask, eighth, min_volume_mm3=0.5)  # under one mm3 still filters
    assert count == 1 and kept.sum() == 9
    kept, count = without_small_lesions(mask, eighth, min_volume_mm3=0.25)
    assert count == 2 and kept.sum() == 11


def test_an_empty_mask_has_no_lesion_to_keep():
    kept, count = without_small_lesions(np.zeros((3, 4, 4), bool), (1.0, 1.0, 1.0), min_volume_mm3=2.0)
    assert count == 0 and not kept.any()
