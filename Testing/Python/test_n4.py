"""Our NumPy N4 computes what SimpleITK's N4 filter computes, on images where the bias is strong.

The comparisons run a fixed number of iterations (convergence threshold 0). With a threshold, ITK
decides when a level stops from a single-precision statistic, so near the threshold the two can
stop one iteration apart; that is a difference in when to stop, not in what an iteration does."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from WMHDomainAdaptLib import n4
from WMHDomainAdaptLib.io import image_like
from WMHDomainAdaptLib.preprocess import PreprocessConfig, n4_correct

ITERATIONS = [50] * 4
CONVERGENCE = 0.0  # every level runs all its iterations


def biased_head(seed: int, bias_strength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, mask, log bias) on a (z, y, x) grid: two tissues and a lesion-like blob in an
    ellipsoid, times a smooth bias field with a linear and a curved part, plus noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in (14, 44, 40)), indexing="ij")
    head = (x / 0.9) ** 2 + (y / 0.95) ** 2 + (z / 0.9) ** 2 < 1
    inner = (x / 0.5) ** 2 + (y / 0.6) ** 2 + (z / 0.6) ** 2 < 1
    blob = (x - 0.2) ** 2 + (y + 0.1) ** 2 + z ** 2 < 0.04
    tissue = np.where(blob, 160.0, np.where(inner, 90.0, 60.0))
    log_bias = bias_strength * (0.7 * x - 0.4 * y + 0.3 * z + 0.5 * x * y - 0.4 * z ** 2)
    image = np.where(head, tissue * np.exp(log_bias) + rng.normal(0, 3, x.shape), 2.0)
    return image.astype(np.float32), head, log_bias


def itk_n4(image: sitk.Image, mask: np.ndarray, iterations: list[int] = ITERATIONS,
           convergence: float = CONVERGENCE) -> sitk.N4BiasFieldCorrectionImageFilter:
    """SimpleITK's N4 filter, run on `image` inside `mask`: the reference our N4 must match."""
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations(iterations)
    corrector.SetConvergenceThreshold(convergence)
    corrector.Execute(image, image_like(mask.astype(np.uint8), image))
    return corrector


def itk_log_bias(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    itk_image = sitk.GetImageFromArray(image)
    return sitk.GetArrayFromImage(itk_n4(itk_image, mask).GetLogBiasFieldAsImage(itk_image))


@pytest.mark.parametrize("seed, bias_strength", [(0, 0.6), (1, 1.2)])
def test_the_log_bias_field_matches_simpleitks_n4(seed, bias_strength):
    image, mask, _ = biased_head(seed, bias_strength)
    expected = itk_log_bias(image, mask)
    lattice = n4.fit_log_bias_lattice(image, mask, ITERATIONS, CONVERGENCE)
    ours = n4.log_bias_field(lattice, image.shape)
    assert np.ptp(expected[mask]) > 0.5  # a strong field, so agreement is not trivial
    assert np.abs(ours - expected)[mask].max() < 1e-4 * np.ptp(expected[mask])


def test_the_fitted_field_follows_the_true_bias():
    image, mask, log_bias = biased_head(2, 1.0)
    lattice = n4.fit_log_bias_lattice(image, mask, ITERATIONS, CONVERGENCE)
    fitted = n4.log_bias_field(lattice, image.shape)[mask]
    assert np.corrcoef(fitted, log_bias[mask])[0, 1] > 0.95


def test_a_field_evaluated_on_a_finer_grid_of_the_same_view_matches_simpleitks():
    image, mask, _ = biased_head(3, 0.8)
    corrector = itk_n4(sitk.GetImageFromArray(image), mask)
    fine_grid = sitk.Image((79, 87, 27), sitk.sitkFloat32)
    expected = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(fine_grid))
    ours = n4.log_bias_field(n4.fit_log_bias_lattice(image, mask, ITERATIONS, CONVERGENCE), (27, 87, 79))
    # the whole grid, corners far from any masked voxel included, where rounding differences grow
    assert np.abs(ours - expected).max() < 5e-4 * np.ptp(expected)


def test_refining_a_lattice_leaves_its_spline_unchanged():
    lattice = np.random.default_rng(0).normal(size=(4, 5, 7))
    finer = n4.refine(lattice)
    assert finer.shape == (5, 7, 11)
    shape = (9, 20, 31)
    np.testing.assert_allclose(n4.log_bias_field(finer, shape), n4.log_bias_field(lattice, shape), atol=1e-12)


def test_basis_weights_of_every_voxel_sum_to_one():
    for size, control_points in [(13, 4), (38, 7), (53, 11)]:
        np.testing.assert_allclose(n4.basis_matrix(size, control_points).sum(1), 1.0)


def test_a_level_stops_once_an_iteration_changes_the_field_less_than_the_threshold():
    image, mask, _ = biased_head(4, 0.6)
    stopped = n4.fit_log_bias_lattice(image, mask, [200], convergence=1e-2)
    same_as = [count for count in range(1, 30)
               if np.array_equal(stopped, n4.fit_log_bias_lattice(image, mask, [count], 0.0))]
    assert len(same_as) == 1  # it ran a fixed, small number of iterations, not all 200


def test_n4_correct_keeps_the_grid_and_matches_simpleitk_through_the_shrunk_fit():
    array, mask, _ = biased_head(5, 1.0)
    image = image_like(array, sitk.GetImageFromArray(array))
    config = PreprocessConfig(n4_convergence=CONVERGENCE)
    corrected = n4_correct(image, mask, config)
    assert corrected.shape == array.shape and corrected.dtype == np.float32
    shrink = [max(1, min(config.n4_shrink, size // 8)) for size in image.GetSize()]
    small = sitk.Shrink(image, shrink) + 1e-3
    small_mask = sitk.GetArrayFromImage(sitk.Shrink(image_like(mask.astype(np.uint8), image), shrink)) > 0
    corrector = itk_n4(small, small_mask, [config.n4_iterations] * 4, config.n4_convergence)
    expected = sitk.GetArrayFromImage(image / sitk.Exp(corrector.GetLogBiasFieldAsImage(image)))
    # up to a constant factor, which N4 leaves free and the z-scores that follow divide out
    ours, theirs = corrected[mask], expected[mask]
    np.testing.assert_allclose(ours / ours.mean(), theirs / theirs.mean(), rtol=1e-4)


def test_a_flat_image_gets_no_bias_field():
    _, mask, _ = biased_head(6, 0.0)
    flat = np.where(mask, 80.0, 0.0).astype(np.float32)
    lattice = n4.fit_log_bias_lattice(flat, mask, [5, 5], CONVERGENCE)
    np.testing.assert_array_equal(n4.log_bias_field(lattice, flat.shape), 0.0)
