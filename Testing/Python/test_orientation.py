"""Scans stored sagittally or coronally: segmented on axial slices, masks back on their own grid."""

import numpy as np
import pytest
import SimpleITK as sitk
from phantom import phantom_arrays, phantom_image, save_tiny_model

from WMHDomainAdaptLib.cli import main
from WMHDomainAdaptLib.io import read_image
from WMHDomainAdaptLib.orientation import Reorientation

# storage: (axes permutation for sitk.PermuteAxes, flips after it); each keeps every voxel's world position
STORAGES = {"axial": ([0, 1, 2], [False, False, False]),
            "sagittal": ([2, 0, 1], [True, False, False]),
            "coronal": ([0, 2, 1], [False, True, True])}


def stored(image: sitk.Image, storage: str) -> sitk.Image:
    """`image` (stored as the training scans are) stored another way; every voxel keeps its place."""
    order, flips = STORAGES[storage]
    return sitk.Flip(sitk.PermuteAxes(image, order), flips)


def phantom(seed: int, which: int = 1) -> sitk.Image:
    """A phantom volume stored as the training scans are: RAS+ (x and y indices reversed against
    ITK's LPS), 10 degrees oblique about z."""
    return sitk.Flip(phantom_image(phantom_arrays(seed)[which]), [True, True, False])


def world_points(image: sitk.Image, array_indices) -> np.ndarray:
    return np.array([image.TransformIndexToPhysicalPoint([int(i) for i in index[::-1]])
                     for index in array_indices])


@pytest.mark.parametrize("storage", ["sagittal", "coronal"])
def test_restoring_axial_storage_gives_the_axial_scan_voxel_for_voxel_at_the_same_world_points(storage):
    flair = phantom(1)
    image = stored(flair, storage)
    orientation = Reorientation.of(image)
    axial = orientation.axial_image(image)
    assert not orientation.is_identity
    assert np.array_equal(sitk.GetArrayViewFromImage(axial), sitk.GetArrayViewFromImage(flair))
    assert np.allclose(axial.GetOrigin(), flair.GetOrigin(), atol=1e-9)
    assert np.allclose(axial.GetDirection(), flair.GetDirection(), atol=1e-12)
    assert axial.GetSpacing() == flair.GetSpacing()
    # each input voxel, numbered, lands where the axial grid puts the same world point
    numbered = np.arange(flair.GetNumberOfPixels()).reshape(sitk.GetArrayViewFromImage(image).shape)
    on_axial = orientation.to_axial(numbered)
    picks = [5, 777, numbered.size - 1]
    input_indices = [np.unravel_index(n, numbered.shape) for n in picks]
    axial_indices = [np.argwhere(on_axial == n)[0] for n in picks]
    assert np.allclose(world_points(image, input_indices), world_points(axial, axial_indices), atol=1e-6)


@pytest.mark.parametrize("storage", list(STORAGES))
def test_to_input_undoes_to_axial_for_volumes_and_channel_stacks(storage):
    image = stored(phantom(2), storage)
    orientation = Reorientation.of(image)
    volume = sitk.GetArrayFromImage(image)
    channels = np.stack([volume, volume * 2])
    assert np.array_equal(orientation.to_input(orientation.to_axial(volume)), volume)
    assert np.array_equal(orientation.to_input(orientation.to_axial(channels)), channels)
    assert orientation.is_identity == (storage == "axial")


def test_a_scan_stored_as_the_training_scans_are_is_left_as_it_is_and_an_lps_one_is_flipped():
    assert Reorientation.of(phantom(3)).is_identity  # RAS+, 10 degrees oblique about z
    lps = Reorientation.of(phantom_image(phantom_arrays(3)[1]))
    assert lps.axes == (0, 1, 2) and lps.flips == (False, True, True)


def test_one_scan_stored_three_ways_gives_one_mask_in_world_space_on_each_input_grid(tmp_path):
    model = save_tiny_model(tmp_path / "model.safetensors")
    masks = {}
    for storage in STORAGES:
        folder = tmp_path / storage
        folder.mkdir()
        for name, which in (("t1", 0), ("flair", 1)):
            sitk.WriteImage(stored(phantom(4, which), storage), str(folder / f"{name}.nii.gz"))
        assert main(["segment", "--model", str(model), "--t1", str(folder / "t1.nii.gz"), "--flair",
                     str(folder / "flair.nii.gz"), "--out", str(folder / "mask.nii.gz"),
                     "--prob", str(folder / "prob.nii.gz")]) == 0
        given, mask = read_image(folder / "flair.nii.gz"), read_image(folder / "mask.nii.gz")
        assert mask.GetSize() == given.GetSize() and mask.GetSpacing() == given.GetSpacing()
        assert mask.GetOrigin() == given.GetOrigin() and mask.GetDirection() == given.GetDirection()
        masks[storage] = mask
    axial = masks["axial"]
    assert sitk.GetArrayViewFromImage(axial).any()
    for storage in ("sagittal", "coronal"):
        back_on_axial = sitk.Resample(masks[storage], axial, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        same = np.array_equal(sitk.GetArrayViewFromImage(back_on_axial), sitk.GetArrayViewFromImage(axial))
        assert same, storage
