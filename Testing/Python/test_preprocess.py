"""Preprocessing: the FLAIR grid is kept exactly, the T1 is resampled through world space."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.io import image_like
from WMHDomainAdaptLib.network_input import input_channel_names, slices_with_context
from WMHDomainAdaptLib.preprocess import (
    PreprocessConfig,
    n4_correct,
    preprocess,
    t1_on_flair_grid,
    zscore,
)

FLAIR_SIZE = (40, 48, 12)  # x, y, z
FLAIR_SPACING = (1.0, 1.2, 3.0)
T1_SIZE = (84, 84, 84)  # 1 mm isotropic, larger than the FLAIR's 39.4 mm half-diagonal
CUBE_CENTRE_OFFSET = np.array([5.0, -6.0, 4.0])  # mm from the FLAIR centre, in world axes
CUBE_HALF = 6.0  # mm
NO_N4 = PreprocessConfig(n4=False)


def rotation(z_deg: float, x_deg: float) -> np.ndarray:
    a, b = np.radians(z_deg), np.radians(x_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def grid(size, spacing, direction: np.ndarray, centre: np.ndarray) -> sitk.Image:
    """An empty float image whose voxel grid is centred on `centre` (world mm)."""
    image = sitk.Image(size, sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetDirection(direction.ravel().tolist())
    half = direction @ (np.array(spacing) * (np.array(size) - 1) / 2)
    image.SetOrigin((centre - half).tolist())
    return image


def world_points(image: sitk.Image) -> np.ndarray:
    """(z, y, x, 3) physical coordinates of every voxel centre, vectorized."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in image.GetSize()[::-1]], indexing="ij"))[::-1]
    direction = np.array(image.GetDirection()).reshape(3, 3)
    offsets = np.einsum("ij,j...->...i", direction * np.array(image.GetSpacing()), index)
    return offsets + np.array(image.GetOrigin())


def fill(image: sitk.Image, array: np.ndarray) -> sitk.Image:
    return image_like(array.astype(np.float32), image)


CENTRE = np.array([-3.5, 12.0, 20.0])
RAS_STORAGE = np.diag([-1.0, -1.0, 1.0])  # stored as the training scans are: not reoriented


def flair_image(bias: float = 0.0) -> sitk.Image:
    """Uniform tissue in an ellipsoid (world coordinates), optionally times a smooth bias field."""
    flair = grid(FLAIR_SIZE, FLAIR_SPACING, rotation(12, -8) @ RAS_STORAGE, CENTRE)
    local = world_points(flair) - CENTRE
    inside = ((local / np.array([17.0, 24.0, 15.0])) ** 2).sum(-1) < 1
    field = np.exp(bias * log_bias_shape(flair))
    noise = np.random.default_rng(0).normal(0, 1.5, inside.shape)
    return fill(flair, np.where(inside, 100.0, 4.0) * field + noise)


def log_bias_shape(image: sitk.Image) -> np.ndarray:
    """A smooth, mostly linear log-bias across the head (about -1..1)."""
    local = world_points(image) - CENTRE
    return local[..., 0] / 20 + 0.6 * local[..., 1] / 28


def in_cube(points: np.ndarray, margin: float) -> np.ndarray:
    """Voxel centres deeper than `margin` inside the world-axis-aligned bright cube."""
    return (np.abs(points - CENTRE - CUBE_CENTRE_OFFSET).max(-1) < CUBE_HALF - margin)


def t1_image(blank: bool = False) -> sitk.Image:
    """1 mm isotropic T1 on its own oblique grid: 50 everywhere, 200 in a cube fixed in world space."""
    t1 = grid(T1_SIZE, (1.0, 1.0, 1.0), rotation(-25, 15), CENTRE + np.array([1.5, -2.0, 0.5]))
    if blank:
        return fill(t1, np.zeros(T1_SIZE[::-1]))
    return fill(t1, np.where(in_cube(world_points(t1), 0.0), 200.0, 50.0))


def test_the_bright_t1_cube_lands_where_it_is_in_world_space_on_the_oblique_flair_grid():
    flair = flair_image()
    resampled = sitk.GetArrayFromImage(t1_on_flair_grid(t1_image(), flair, NO_N4)[0])
    points = world_points(flair)
    deep, far = in_cube(points, 2.0), ~in_cube(points, -2.0)
    assert deep.sum() >= 10 and far.sum() > 1000
    assert resampled[deep].min() > 199.0
    assert resampled[far].max() < 51.0


def test_preprocessing_keeps_the_flair_geometry_exactly_in_its_reference_and_outputs():
    flair = flair_image()
    result = preprocess(t1_image(), flair, NO_N4)
    assert result.image.shape == (2,) + FLAIR_SIZE[::-1] and result.image.dtype == np.float32
    assert result.brain_mask.shape == FLAIR_SIZE[::-1]
    output = image_like(result.image[1], result.reference)
    for image in (result.reference, output):
        assert image.GetSize() == flair.GetSize()
        assert image.GetSpacing() == flair.GetSpacing()
        assert image.GetOrigin() == flair.GetOrigin()
        assert image.GetDirection() == flair.GetDirection()


def test_the_t1_channel_is_brightest_where_the_world_cube_is():
    flair = flair_image()
    result = preprocess(t1_image(), flair, NO_N4)
    points = world_points(flair)
    t1 = result.image[0]
    assert t1[in_cube(points, 2.0)].min() > 2.0 > t1[~in_cube(points, -2.0) & result.brain_mask].max()


def test_channels_are_z_scored_inside_the_brain_and_zero_outside():
    flair = flair_image()
    mask = sitk.GetArrayFromImage(flair) > 50
    result = preprocess(t1_image(), flair, NO_N4, brain_mask=mask)
    values = result.image[1][mask]
    assert abs(values.mean()) < 1e-4 and values.std() == pytest.approx(1.0, abs=1e-4)
    assert not result.image[:, ~mask].any()
    assert np.abs(result.image).max() <= NO_N4.clip


def test_without_n4_the_flair_channel_is_the_plain_z_score_of_the_flair():
    flair = flair_image(bias=0.5)
    mask = sitk.GetArrayFromImage(flair) > 20
    result = preprocess(t1_image(), flair, NO_N4, brain_mask=mask)
    np.testing.assert_array_equal(result.image[1], zscore(sitk.GetArrayFromImage(flair), mask, NO_N4.clip))


def test_n4_removes_most_of_a_smooth_multiplicative_bias():
    flair = flair_image(bias=0.5)
    mask = sitk.GetArrayFromImage(flair_image()) > 50  # the tissue, found without the bias
    raw = sitk.GetArrayFromImage(flair)[mask]
    corrected = n4_correct(flair, mask, PreprocessConfig())[mask]
    assert raw.std() / raw.mean() > 0.15
    assert corrected.std() / corrected.mean() < 0.5 * raw.std() / raw.mean()
    log_bias = log_bias_shape(flair)[mask]
    with_n4 = preprocess(t1_image(), flair, PreprocessConfig(), brain_mask=mask).image[1][mask]
    without = preprocess(t1_image(), flair, NO_N4, brain_mask=mask).image[1][mask]
    assert np.corrcoef(without, log_bias)[0, 1] ** 2 > 0.9  # share of variance that is bias
    assert np.corrcoef(with_n4, log_bias)[0, 1] ** 2 < 0.7


def test_a_t1_and_flair_that_do_not_overlap_in_world_space_are_refused():
    t1 = t1_image()
    t1.SetOrigin((np.array(t1.GetOrigin()) + [0.0, 0.0, 500.0]).tolist())
    with pytest.raises(InputError, match="T1: T1 and FLAIR do not overlap in world space"):
        preprocess(t1, flair_image(), NO_N4)


def test_a_blank_t1_gives_an_empty_brain_mask_error():
    with pytest.raises(InputError, match="computed brain mask is empty"):
        preprocess(t1_image(blank=True), flair_image(), NO_N4)


def test_a_given_empty_brain_mask_is_refused():
    with pytest.raises(InputError, match="brain mask is empty"):
        preprocess(t1_image(), flair_image(), NO_N4, brain_mask=np.zeros(FLAIR_SIZE[::-1], bool))


def test_the_config_survives_to_dict_from_dict_and_json():
    config = PreprocessConfig(n4=False, n4_shrink=2, clip=4.5, channels=("flair", "t1"))
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    assert PreprocessConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert PreprocessConfig.from_dict({}) == PreprocessConfig()


def test_an_unknown_config_option_is_refused_by_name():
    with pytest.raises(InputError, match="unknown preprocessing option.s.: n5"):
        PreprocessConfig.from_dict({"n5": True})


def test_the_channel_order_follows_the_config():
    flair = flair_image()
    forward = preprocess(t1_image(), flair, NO_N4)
    swapped = preprocess(t1_image(), flair, PreprocessConfig(n4=False, channels=("flair", "t1")))
    np.testing.assert_array_equal(swapped.image, forward.image[::-1])


def test_context_slices_add_the_neighbouring_slices_channels_after_the_slices_own():
    config = PreprocessConfig(n4=False, context_slices=1)
    assert input_channel_names(config) == ["t1", "flair", "t1[z-1]", "flair[z-1]", "t1[z+1]", "flair[z+1]"]
    own = preprocess(t1_image(), flair_image(), config).image
    assert own.shape[0] == 2  # the neighbours are stacked when the network is fed, not stored
    zs = np.arange(own.shape[1])
    stacked = slices_with_context(own, zs, 1)
    assert stacked.shape == (len(zs), 6, *own.shape[2:])
    np.testing.assert_array_equal(stacked[:, :2], own.transpose(1, 0, 2, 3))
    np.testing.assert_array_equal(stacked[1:, 2:4], own[:, :-1].transpose(1, 0, 2, 3))  # z sees z-1
    np.testing.assert_array_equal(stacked[:-1, 4:6], own[:, 1:].transpose(1, 0, 2, 3))  # and z+1
    assert not stacked[0, 2:4].any() and not stacked[-1, 4:6].any()  # beyond the volume: zeros


def test_a_few_slices_with_context_are_those_slices_of_the_whole_stack():
    own = np.random.default_rng(0).normal(size=(2, 7, 5, 4)).astype(np.float32)
    whole = slices_with_context(own, np.arange(7), 2)
    assert input_channel_names(PreprocessConfig(context_slices=2))[8:] == ["t1[z+2]", "flair[z+2]"]
    for zs in ([0, 1], [3], [5, 6], [6, 0, 2]):
        np.testing.assert_array_equal(slices_with_context(own, np.array(zs), 2), whole[zs])
    np.testing.assert_array_equal(whole[:-2, 8:], own[:, 2:].transpose(1, 0, 2, 3))  # z sees z+2


def test_a_negative_number_of_context_slices_is_refused():
    with pytest.raises(InputError, match="must be 0 or more"):
        PreprocessConfig(context_slices=-1)
