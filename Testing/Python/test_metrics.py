"""The challenge metrics on small volumes whose answers can be worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.metrics import (
    boundary,
    evaluate_arrays,
    evaluate_files,
    evaluate_images,
    hd95,
    summarize,
)

SHAPE = (12, 40, 48)  # z, y, x
ISO = (1.0, 1.0, 1.0)


def empty() -> np.ndarray:
    return np.zeros(SHAPE, np.uint8)


def cube(volume: np.ndarray, z: int, y: int, x: int, size: int = 2, value: int = 1) -> np.ndarray:
    volume[z:z + size, y:y + size, x:x + size] = value
    return volume


def write(array: np.ndarray, path, spacing=ISO, origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path


def test_cubes_touching_only_at_a_corner_are_one_lesion_under_26_connectivity():
    reference = cube(cube(empty(), 2, 2, 2), 4, 4, 4)  # share only the corner (3,3,3)-(4,4,4)
    prediction = cube(empty(), 2, 2, 2)
    result = evaluate_arrays(prediction, reference, ISO)
    assert result["n_ref_lesions"] == 1
    assert result["recall"] == 1.0


def test_cubes_one_voxel_apart_are_two_lesions():
    reference = cube(cube(empty(), 2, 2, 2), 5, 5, 5)
    result = evaluate_arrays(cube(empty(), 2, 2, 2), reference, ISO)
    assert result["n_ref_lesions"] == 2
    assert result["recall"] == 0.5


def test_an_empty_prediction_scores_zero_dice_full_volume_error_and_no_distance():
    reference = cube(empty(), 3, 3, 3)
    result = evaluate_arrays(empty(), reference, ISO)
    assert result["dsc"] == 0.0
    assert math.isnan(result["hd95"])
    assert result["avd"] == 100.0
    assert (result["recall"], result["precision"], result["f1"]) == (0.0, 1.0, 0.0)


def test_an_empty_reference_gives_full_recall_zero_precision_and_undefined_distance_and_avd():
    result = evaluate_arrays(cube(empty(), 3, 3, 3), empty(), ISO)
    assert result["dsc"] == 0.0
    assert math.isnan(result["hd95"]) and math.isnan(result["avd"])
    assert (result["recall"], result["precision"], result["f1"]) == (1.0, 0.0, 0.0)


def test_two_empty_masks_agree_perfectly_where_agreement_is_defined():
    result = evaluate_arrays(empty(), empty(), ISO)
    assert (result["dsc"], result["recall"], result["precision"], result["f1"]) == (1.0, 1.0, 1.0, 1.0)
    assert math.isnan(result["hd95"]) and math.isnan(result["avd"])


def test_a_prediction_on_other_pathology_label_2_is_ignored():
    reference = cube(cube(empty(), 2, 2, 2), 6, 20, 20, size=3, value=2)
    prediction = cube(cube(empty(), 2, 2, 2), 6, 20, 20, size=3)
    result = evaluate_arrays(prediction, reference, ISO)
    assert result["dsc"] == 1.0 and result["hd95"] == 0.0 and result["avd"] == 0.0
    assert (result["n_pred_lesions"], result["precision"]) == (1, 1.0)
    assert result["pred_ml"] == pytest.approx(8 / 1000)


def test_hd95_of_two_single_voxels_is_their_physical_distance_with_anisotropic_spacing():
    spacing_xyz = (0.5, 1.2, 3.0)
    reference, prediction = empty(), empty()
    reference[4, 10, 10] = 1
    prediction[5, 12, 13] = 1  # dz = 1, dy = 2, dx = 3 voxels
    expected = math.sqrt((1 * 3.0) ** 2 + (2 * 1.2) ** 2 + (3 * 0.5) ** 2)  # 4.1243 mm
    assert hd95(prediction.astype(bool), reference.astype(bool), spacing_xyz) == pytest.approx(expected)


def test_hd95_of_a_square_moved_two_thick_slices_is_twice_the_slice_thickness():
    reference = np.zeros(SHAPE, bool)
    reference[3, 10:15, 10:15] = True
    prediction = np.roll(reference, 2, axis=0)
    assert hd95(prediction, reference, (1.0, 1.2, 3.0)) == pytest.approx(6.0)


def test_hd95_ignores_a_single_far_outlier_that_the_maximum_would_count():
    reference = np.zeros(SHAPE, bool)
    reference[5, 5:15, 5:15] = True  # boundary ring of 36 voxels
    prediction = reference.copy()
    prediction[5, 35, 40] = True  # one voxel of 37 boundary voxels: below the 95th percentile
    assert hd95(prediction, reference, ISO) == 0.0


def test_hd95_equals_a_brute_force_nearest_boundary_search_in_world_coordinates():
    rng = np.random.default_rng(1)
    spacing_xyz = np.array([0.9, 1.2, 3.0])
    smooth = [sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(
        sitk.GetImageFromArray(rng.random(SHAPE).astype(np.float32)), 1.5)) for _ in range(2)]
    reference, prediction = (s > np.percentile(s, 92) for s in smooth)

    def points(mask):
        return np.argwhere(boundary(mask))[:, ::-1] * spacing_xyz  # (x, y, z) in mm

    a, b = points(prediction), points(reference)
    pairwise = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    expected = max(np.percentile(pairwise.min(axis=1), 95), np.percentile(pairwise.min(axis=0), 95))
    assert hd95(prediction, reference, tuple(spacing_xyz)) == pytest.approx(expected, abs=1e-4)


def test_boundary_matches_the_challenges_in_plane_sitk_erosion():
    rng = np.random.default_rng(2)
    mask = rng.random(SHAPE) > 0.3
    mask[:, :, :6] = True  # a band touching the image edge: the edge counts as foreground
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    expected = sitk.GetArrayFromImage(image - sitk.BinaryErode(image, (1, 1, 0))).astype(bool)
    np.testing.assert_array_equal(boundary(mask), expected)


def test_avd_is_the_volume_difference_in_percent_of_the_reference():
    reference = np.zeros(SHAPE, np.uint8)
    reference[2, 2, 2:12] = 1  # 10 voxels
    prediction = np.zeros(SHAPE, np.uint8)
    prediction[2, 2, 2:14] = 1  # 12 voxels
    assert evaluate_arrays(prediction, reference, ISO)["avd"] == pytest.approx(20.0)
    assert evaluate_arrays(prediction[..., ::-1].copy(), reference, ISO)["avd"] == pytest.approx(20.0)


def test_lesion_recall_precision_and_f1_count_components():
    reference = cube(cube(cube(empty(), 1, 2, 2), 1, 20, 20), 8, 30, 40)  # three lesions
    prediction = cube(cube(empty(), 1, 2, 2), 1, 20, 20, size=1)  # hits two
    cube(cube(prediction, 8, 2, 30), 8, 10, 40)  # two false positives
    result = evaluate_arrays(prediction, reference, ISO)
    assert (result["n_ref_lesions"], result["n_pred_lesions"], result["n_detected"]) == (3, 4, 2)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["precision"] == pytest.approx(2 / 4)
    assert result["f1"] == pytest.approx(4 / 7)


def test_one_predicted_blob_over_two_lesions_is_one_true_detection():
    reference = cube(cube(empty(), 2, 2, 2), 2, 2, 6)
    prediction = empty()
    prediction[2:4, 2:4, 2:8] = 1
    result = evaluate_arrays(prediction, reference, ISO)
    assert (result["recall"], result["precision"], result["n_pred_lesions"]) == (1.0, 1.0, 1)


def test_dice_of_half_overlapping_bars_is_one_half():
    reference, prediction = empty(), empty()
    reference[2, 2, 2:10] = 1
    prediction[2, 2, 6:14] = 1
    assert evaluate_arrays(prediction, reference, ISO)["dsc"] == pytest.approx(0.5)


def test_a_probability_prediction_is_thresholded_at_one_half():
    reference = cube(empty(), 2, 2, 2)
    prediction = np.zeros(SHAPE, np.float32)
    prediction[2:4, 2:4, 2:4] = 0.5
    prediction[8, 30, 30] = 0.49
    result = evaluate_arrays(prediction, reference, ISO)
    assert result["dsc"] == 1.0 and result["n_pred_lesions"] == 1


def test_a_reference_with_values_other_than_0_1_2_is_refused():
    reference = cube(empty(), 2, 2, 2, value=3)
    with pytest.raises(InputError, match="found values 3"):
        evaluate_arrays(empty(), reference, ISO)


def test_a_prediction_of_another_size_is_refused_naming_the_prediction_file(tmp_path):
    reference = write(cube(empty(), 2, 2, 2), tmp_path / "ref.nii.gz")
    prediction = write(np.zeros((12, 40, 46), np.uint8), tmp_path / "pred.nii.gz")
    with pytest.raises(InputError) as raised:
        evaluate_files(prediction, reference)
    assert str(prediction) in str(raised.value) and "size" in str(raised.value)


def test_files_are_compared_on_the_reference_grid_and_its_spacing(tmp_path):
    reference = write(cube(empty(), 2, 2, 2), tmp_path / "ref.nrrd", spacing=(1.0, 1.2, 3.0))
    prediction = write(cube(empty(), 2, 2, 2), tmp_path / "pred.nii.gz", spacing=(2.0, 2.0, 2.0),
                       origin=(50.0, 0.0, 0.0))
    result = evaluate_files(prediction, reference)
    assert result["dsc"] == 1.0
    assert result["ref_ml"] == pytest.approx(8 * 3.6 / 1000)


def test_a_missing_prediction_file_is_named_in_the_error(tmp_path):
    reference = write(cube(empty(), 2, 2, 2), tmp_path / "ref.nii.gz")
    with pytest.raises(InputError, match="missing.nii.gz: prediction file not found"):
        evaluate_files(tmp_path / "missing.nii.gz", reference)


def test_images_with_identical_masks_score_perfectly():
    reference = sitk.GetImageFromArray(cube(empty(), 4, 4, 4, size=3))
    result = evaluate_images(reference, reference)
    assert (result["dsc"], result["hd95"], result["avd"], result["f1"]) == (1.0, 0.0, 0.0, 1.0)


def test_summary_means_and_medians_skip_nan_and_report_how_many_values_they_rest_on():
    rows = [{"case": "a", "dsc": 0.5, "hd95": 2.0, "ref_ml": 1.0, "pred_ml": 1.0, "overlap_ml": 0.5},
            {"case": "b", "dsc": 0.9, "hd95": math.nan, "ref_ml": 3.0, "pred_ml": 1.0, "overlap_ml": 1.0},
            {"case": "c", "dsc": 0.1, "hd95": 6.0, "ref_ml": 0.0, "pred_ml": 2.0, "overlap_ml": 0.0}]
    summary = summarize(rows)
    assert "case" not in summary
    assert summary["dsc"] == {"mean": pytest.approx(0.5), "median": pytest.approx(0.5), "count": 3}
    assert summary["hd95"] == {"mean": 4.0, "median": 4.0, "count": 2}
    assert summary["pooled_dsc"]["mean"] == pytest.approx(2 * 1.5 / 8.0)
