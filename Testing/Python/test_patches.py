"""Patch sampling: lesion patches per lesion voxel, or per lesion when `lesion_balance` asks."""

import numpy as np
import pytest
import SimpleITK as sitk

from WMHDomainAdaptLib.cases import PreparedCase
from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.network_input import InputSpec
from WMHDomainAdaptLib.patches import PatchSampler
from WMHDomainAdaptLib.training import TrainConfig

BIG, SMALL = 1.0, 2.0  # image values that tell which lesion a patch is centred on

TWO_D = InputSpec(("t1", "flair"))  # the slice's own two channels, no neighbours


def one_big_and_one_small_lesion() -> PreparedCase:
    """A 500-voxel lesion and a 1-voxel lesion; channel 0 marks each with its own value."""
    label = np.zeros((6, 40, 40), np.uint8)
    label[1:6, 5:15, 5:15] = 1
    label[3, 30, 30] = 1
    image = np.zeros((2, 6, 40, 40), np.float32)
    image[0][label == 1] = BIG
    image[0, 3, 30, 30] = SMALL
    reference = sitk.Image(40, 40, 6, sitk.sitkUInt8)
    return PreparedCase("two-lesions", image, np.ones(label.shape, bool), label, reference)


def share_centred_on_the_small_lesion(lesion_balance: float) -> float:
    sampler = PatchSampler([one_big_and_one_small_lesion()], TWO_D, 8, lesion_fraction=1.0,
                           lesion_balance=lesion_balance)
    images, labels = sampler.sample(2000, np.random.default_rng(0))
    assert (labels[:, 0, 4, 4] == 1).all()  # every patch is centred on a lesion voxel
    return float(np.mean(images[:, 0, 4, 4] == SMALL))


def test_lesion_patches_drawn_per_voxel_almost_never_show_a_small_lesion():
    assert share_centred_on_the_small_lesion(0.0) < 0.01


def test_lesion_balance_shows_small_and_large_lesions_equally_often():
    assert share_centred_on_the_small_lesion(1.0) == pytest.approx(0.5, abs=0.05)
    assert share_centred_on_the_small_lesion(0.5) == pytest.approx(0.25, abs=0.05)


@pytest.mark.parametrize("balance", [-0.1, 1.5])
def test_a_lesion_balance_outside_zero_to_one_is_refused(balance):
    with pytest.raises(InputError, match="lesion balance"):
        TrainConfig(lesion_balance=balance)


def test_patches_at_the_edges_are_the_zero_padded_windows_around_their_centre():
    """Each patch equals the window of the zero-padded volume centred on its voxel, even where
    the window reaches beyond the image (the brain mask here touches every edge)."""
    shape = (3, 11, 9)
    z, y, x = np.indices(shape)
    image = np.stack([y + 1, x + 1]).astype(np.float32)  # the centre pixel tells where a patch is from
    label = ((y + x) % 3 == 0).astype(np.uint8)
    case = PreparedCase("edges", image, np.ones(shape, bool), label, sitk.Image(9, 11, 3, sitk.sitkUInt8))
    images, labels = PatchSampler([case], TWO_D, 8, lesion_fraction=0.5).sample(300, np.random.default_rng(1))
    padded_image = np.pad(image[:, 0], ((0, 0), (4, 4), (4, 4)))  # every slice is alike
    padded_label = np.pad(label[0], 4)
    assert len(images) == len(labels)
    for patch, patch_label in zip(images, labels):
        cy, cx = int(patch[0, 4, 4]) - 1, int(patch[1, 4, 4]) - 1
        assert (padded_image[:, cy:cy + 8, cx:cx + 8] == patch).all()
        assert (padded_label[cy:cy + 8, cx:cx + 8] == patch_label[0]).all()
    assert {int(v) for v in images[:, 0, 4, 4]} >= {1, shape[1]}  # windows at both edges were drawn


def test_patches_with_context_are_the_windows_of_the_slices_fed_to_the_network():
    """A context case's patch is cut from its own slice and its neighbours', in the channel order
    of whole-slice inference (`PreparedCase.network_input`), zeros beyond the volume."""
    shape = (4, 10, 10)
    z, y, x = np.indices(shape)
    image = np.stack([z * 100 + y * 10 + x, -(z * 100 + y * 10 + x)]).astype(np.float32) + 1
    label = (image[0] % 7 == 0).astype(np.uint8)
    case = PreparedCase("context", image, np.ones(shape, bool), label, sitk.Image(10, 10, 4, sitk.sitkUInt8))
    spec = InputSpec(("t1", "flair"), context_slices=2)
    images, _ = PatchSampler([case], spec, 10, lesion_fraction=0.5).sample(50, np.random.default_rng(2))
    assert images.shape == (50, 10, 10, 10) and spec.size == 10
    whole = case.network_input(spec, np.arange(4))
    for patch in images:
        centre = int(patch[0, 5, 5]) - 1  # the centre pixel tells which voxel the patch is centred on
        cz, cy, cx = centre // 100, centre // 10 % 10, centre % 10
        padded = np.pad(whole[cz], ((0, 0), (5, 5), (5, 5)))
        np.testing.assert_array_equal(patch, padded[:, cy:cy + 10, cx:cx + 10])
