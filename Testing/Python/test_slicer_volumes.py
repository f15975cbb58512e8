"""Volume nodes <-> SimpleITK images keep exact geometry (real MRML from slicer-core)."""

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk
from mrml_testing import assert_same_image, load_volume, make_scene, oblique_image, rotation, write_ras_nrrd
from WMHDomainAdaptLogicLib.volumes import (
    numpy_to_matrix,
    same_grid_as_node,
    update_volume_from_image,
    update_volume_on_grid_of,
    volume_to_image,
)


@pytest.fixture
def mrml():
    return make_scene()


def write_lps_nrrd(image, path):
    sitk.WriteImage(image, str(path))
    return path


def write_nifti(image, path):
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize("writer,name", [(write_lps_nrrd, "lps.nrrd"), (write_ras_nrrd, "ras.nrrd"),
                                         (write_nifti, "volume.nii.gz")])
def test_oblique_anisotropic_file_read_by_slicer_converts_to_the_files_exact_geometry(mrml, tmp_path,
                                                                                      writer, name):
    image = oblique_image()
    node = load_volume(mrml.scene, writer(image, tmp_path / name), "volume")
    assert_same_image(volume_to_image(node), image, atol=1e-4)


def test_image_put_into_a_node_is_saved_by_slicer_with_the_same_geometry(mrml, tmp_path):
    image = oblique_image(spacing=(0.5, 0.7, 4.0), degrees=-37.0, dtype=np.float32)
    node = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "result")
    update_volume_from_image(node, image)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(tmp_path / "saved.nrrd"))
    assert storage.WriteData(node)
    assert_same_image(sitk.ReadImage(str(tmp_path / "saved.nrrd")), image, atol=1e-4)


def test_linear_parent_transform_moves_the_world_geometry(mrml, tmp_path):
    image = oblique_image()
    node = load_volume(mrml.scene, write_lps_nrrd(image, tmp_path / "t1.nrrd"), "T1")
    to_parent = np.eye(4)
    to_parent[:3, :3] = rotation((0.0, 0.0, 1.0), 90.0)  # RAS
    to_parent[:3, 3] = (10.0, -5.0, 2.0)
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "align")
    transform.SetMatrixTransformToParent(numpy_to_matrix(to_parent))
    node.SetAndObserveTransformNodeID(transform.GetID())

    world = volume_to_image(node)

    flip = np.diag([-1.0, -1.0, 1.0])
    expected_origin = flip @ (to_parent[:3, :3] @ (flip @ np.array(image.GetOrigin())) + to_parent[:3, 3])
    np.testing.assert_allclose(world.GetOrigin(), expected_origin, atol=1e-4)
    expected_direction = flip @ to_parent[:3, :3] @ flip @ np.array(image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(np.array(world.GetDirection()).reshape(3, 3), expected_direction, atol=1e-6)


def test_volume_under_a_nonlinear_transform_is_refused_with_advice(mrml, tmp_path):
    node = load_volume(mrml.scene, write_lps_nrrd(oblique_image(), tmp_path / "t1.nrrd"), "T1")
    grid = vtk.vtkGridTransform()
    displacement = vtk.vtkImageData()
    displacement.SetDimensions(2, 2, 2)
    displacement.AllocateScalars(vtk.VTK_DOUBLE, 3)
    displacement.GetPointData().GetScalars().Fill(1.0)
    grid.SetDisplacementGridData(displacement)
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "warp")
    transform.SetAndObserveTransformToParent(grid)
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(ValueError, match="non-linear transform; harden"):
        volume_to_image(node)


def test_result_array_lands_on_the_reference_voxels_under_its_transform(mrml, tmp_path):
    image = oblique_image()
    flair = load_volume(mrml.scene, write_ras_nrrd(image, tmp_path / "flair.nrrd"), "FLAIR")
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    shifted = np.eye(4)
    shifted[:3, 3] = (3.0, 4.0, 5.0)
    transform.SetMatrixTransformToParent(numpy_to_matrix(shifted))
    flair.SetAndObserveTransformNodeID(transform.GetID())
    result = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "probability")
    values = np.random.default_rng(1).random(sitk.GetArrayViewFromImage(image).shape).astype(np.float32)

    update_volume_on_grid_of(result, values, flair)

    result_image = volume_to_image(result)
    assert same_grid_as_node(result_image, flair)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(result_image), values)


def test_array_of_another_shape_is_refused_on_the_reference_grid(mrml, tmp_path):
    flair = load_volume(mrml.scene, write_lps_nrrd(oblique_image(), tmp_path / "flair.nrrd"), "FLAIR")
    result = mrml.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "result")
    with pytest.raises(ValueError, match="differs from 'FLAIR'"):
        update_volume_on_grid_of(result, np.zeros((3, 3, 3), np.uint8), flair)
