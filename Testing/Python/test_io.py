"""Volume I/O: bad files fail with one clear line, geometry survives a round trip exactly."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import SimpleITK as sitk

from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.io import (
    atomic_write,
    image_like,
    read_image,
    read_label,
    read_mask,
    same_grid,
    write_image,
)

SHAPE = (12, 48, 40)  # z, y, x
SPACING = (0.9, 1.2, 3.0)
ORIGIN = (-12.5, 40.25, -7.75)


def oblique_direction(degrees=(20.0, -10.0, 7.0)) -> tuple[float, ...]:
    """A proper rotation (about z, then y, then x), flattened row-major as SimpleITK wants."""
    a, b, c = np.radians(degrees)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return tuple((rz @ ry @ rx).ravel().tolist())


def volume(array=None, spacing=SPACING, origin=ORIGIN, direction=None) -> sitk.Image:
    array = np.random.default_rng(0).normal(100, 20, SHAPE).astype(np.float32) if array is None else array
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction or oblique_direction())
    return image


def test_a_missing_file_is_named_with_its_role(tmp_path):
    with pytest.raises(InputError, match="flair.nii.gz: FLAIR file not found"):
        read_image(tmp_path / "flair.nii.gz", "FLAIR")


def test_garbage_bytes_with_a_nifti_name_are_reported_as_unreadable_in_one_line(tmp_path):
    path = tmp_path / "t1.nii.gz"
    path.write_bytes(b"this is not an image" * 50)
    with pytest.raises(InputError, match="cannot read T1") as raised:
        read_image(path, "T1")
    assert "\n" not in str(raised.value)


def test_a_2d_image_is_refused(tmp_path):
    path = tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((48, 40), np.float32)), str(path))
    with pytest.raises(InputError, match="must be a 3D volume, got a 2D image"):
        read_image(path)


def test_a_4d_image_is_refused(tmp_path):
    path = tmp_path / "series.nii.gz"
    frames = [sitk.GetImageFromArray(np.zeros(SHAPE, np.float32)) for _ in range(3)]
    sitk.WriteImage(sitk.JoinSeries(frames), str(path))
    with pytest.raises(InputError, match="got a 4D image"):
        read_image(path)


def test_a_single_slice_volume_is_refused(tmp_path):
    path = tmp_path / "one.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((1, 48, 40), np.float32)), str(path))
    with pytest.raises(InputError, match=r"got size \(40, 48, 1\)"):
        read_image(path)


def test_a_vector_image_is_refused(tmp_path):
    path = tmp_path / "rgb.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros(SHAPE + (3,), np.uint8), isVector=True), str(path))
    with pytest.raises(InputError, match="3 components per voxel"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_nan_and_inf_voxels_are_refused_in_every_format(tmp_path, suffix):
    array = np.ones(SHAPE, np.float32)
    array[3, 4, 5], array[6, 7, 8] = np.nan, -np.inf
    path = tmp_path / f"flair{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))  # ITK 5.4 reads NIfTI NaN as 0
    with pytest.raises(InputError, match="holds 2 NaN/Inf voxels"):
        read_image(path, "FLAIR")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_finite_nifti_volumes_of_float_and_integer_types_read_unchanged(tmp_path, dtype):
    array = np.arange(np.prod(SHAPE)).reshape(SHAPE).astype(dtype) % 1000
    path = tmp_path / "t1.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(path)), array)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_an_anisotropic_oblique_volume_round_trips_geometry_and_voxels(tmp_path, suffix):
    image = volume()
    path = write_image(image, tmp_path / f"flair{suffix}")
    back = read_image(path)
    assert back.GetSize() == image.GetSize()
    np.testing.assert_allclose(back.GetSpacing(), SPACING, atol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), ORIGIN, atol=1e-5)
    np.testing.assert_allclose(back.GetDirection(), oblique_direction(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    corner = (39, 47, 11)
    np.testing.assert_allclose(back.TransformIndexToPhysicalPoint(corner),
                               image.TransformIndexToPhysicalPoint(corner), atol=1e-4)
    assert same_grid(back, image)


def test_image_like_copies_the_exact_geometry_and_refuses_a_wrong_shape():
    reference = volume()
    wrapped = image_like(np.zeros(SHAPE, np.uint8), reference)
    assert (wrapped.GetSpacing(), wrapped.GetOrigin(), wrapped.GetDirection()) == \
        (reference.GetSpacing(), reference.GetOrigin(), reference.GetDirection())
    with pytest.raises(ValueError, match="does not match reference size"):
        image_like(np.zeros(SHAPE[::-1], np.uint8), reference)


def test_same_grid_notices_a_shifted_origin_but_not_float32_rounding():
    reference = volume()
    nudged = volume(origin=tuple(float(np.float32(o + 1e-6)) for o in ORIGIN))
    shifted = volume(origin=(ORIGIN[0] + 0.5, ORIGIN[1], ORIGIN[2]))
    assert same_grid(nudged, reference) and not same_grid(shifted, reference)


def label_file(tmp_path, values, name="wmh.nii.gz", **geometry):
    array = np.zeros(SHAPE, np.uint8)
    for index, value in enumerate(values):
        array[2, 2, index] = value
    path = tmp_path / name
    sitk.WriteImage(volume(array, **geometry), str(path))
    return path


def test_a_label_with_values_0_1_2_reads_as_uint8_on_the_flair_grid(tmp_path):
    label = read_label(label_file(tmp_path, [1, 2, 1]), volume())
    assert label.dtype == np.uint8 and label.shape == SHAPE
    assert sorted(np.unique(label).tolist()) == [0, 1, 2]


def test_a_label_with_other_values_is_refused_listing_them(tmp_path):
    with pytest.raises(InputError, match="found values 3, 7"):
        read_label(label_file(tmp_path, [1, 3, 7]), volume())


def test_a_label_on_another_grid_than_the_flair_is_refused(tmp_path):
    path = label_file(tmp_path, [1], spacing=(1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="differs from the FLAIR grid"):
        read_label(path, volume())


def test_an_empty_brain_mask_is_refused(tmp_path):
    with pytest.raises(InputError, match="brain mask is empty"):
        read_mask(label_file(tmp_path, [], name="mask.nii.gz"), volume())


def test_a_failed_atomic_write_leaves_no_temporary_file_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out" / "table.csv"
    atomic_write(target, lambda tmp: tmp.write_text("old"))

    def half_write(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(InputError, match=r"table.csv: cannot write \(disk full\); nothing was written"):
        atomic_write(target, half_write)
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]
    assert target.read_text(encoding="utf-8") == "old"


def test_a_failed_image_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(InputError, match="flair.unknownformat: cannot write"):
        write_image(volume(), tmp_path / "flair.unknownformat")
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_the_usual_permissions_not_private_temporary_ones(tmp_path):
    path = write_image(volume(), tmp_path / "pred.nii.gz")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
