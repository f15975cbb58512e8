"""The adaptation set: corrected cases stored on disk with a manifest the library reads."""

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_testing import load_volume, make_scene, oblique_image, write_ras_nrrd
from WMHDomainAdaptLogicLib.adaptation_set import AdaptationSet, add_case_from_nodes
from WMHDomainAdaptLogicLib.segmentation import create_wmh_segmentation

from WMHDomainAdaptLib.dataset import load_cases
from WMHDomainAdaptLib.io import read_image, read_label


@pytest.fixture
def mrml():
    return make_scene()


@pytest.fixture
def images():
    flair = oblique_image(size=(14, 11, 6), spacing=(0.8, 0.95, 3.5), degrees=31.0, seed=1)
    t1 = oblique_image(size=(14, 13, 23), spacing=(1.0, 1.0, 1.0), degrees=31.0, seed=2)  # another grid
    return t1, flair


@pytest.fixture
def nodes(mrml, tmp_path, images):
    t1, flair = images
    sitk.WriteImage(t1, str(tmp_path / "t1.nii.gz"))
    return (load_volume(mrml.scene, tmp_path / "t1.nii.gz", "T1"),
            load_volume(mrml.scene, write_ras_nrrd(flair, tmp_path / "flair.nrrd"), "FLAIR sub-01"))


def corrected(mrml, images, flair_node):
    mask = (sitk.GetArrayFromImage(images[1]) > 850).astype(np.uint8)
    return create_wmh_segmentation(mrml.scene, mask, flair_node), mask


def test_added_case_is_stored_on_the_flair_grid_and_read_back_by_the_library(mrml, tmp_path, images, nodes):
    t1_node, flair_node = nodes
    segmentation, mask = corrected(mrml, images, flair_node)
    adaptation_set = AdaptationSet(tmp_path / "set")

    case = add_case_from_nodes(mrml.scene, adaptation_set, t1_node, flair_node, segmentation)

    (listed,) = load_cases(adaptation_set.manifest)
    assert listed.case_id == case.case_id == "FLAIR_sub-01"
    flair = read_image(listed.flair)
    np.testing.assert_allclose(flair.GetDirection(), images[1].GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(read_label(listed.label, flair), mask)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(listed.t1)),
                                  sitk.GetArrayViewFromImage(images[0]))


def test_empty_corrected_segmentation_is_refused_and_nothing_is_written(mrml, tmp_path, images,
                                                                       nodes):
    t1_node, flair_node = nodes
    nothing = np.zeros(sitk.GetArrayViewFromImage(images[1]).shape)
    empty = create_wmh_segmentation(mrml.scene, nothing, flair_node)
    adaptation_set = AdaptationSet(tmp_path / "set")
    with pytest.raises(ValueError, match="corrected segmentation is empty"):
        add_case_from_nodes(mrml.scene, adaptation_set, t1_node, flair_node, empty)
    assert len(adaptation_set) == 0 and not (tmp_path / "set").exists()


def test_t1_far_from_the_flair_is_refused(mrml, tmp_path, images):
    far = oblique_image(origin=(400.0, 400.0, 400.0))
    sitk.WriteImage(far, str(tmp_path / "far.nrrd"))
    t1_node = load_volume(mrml.scene, tmp_path / "far.nrrd", "T1 elsewhere")
    flair_node = load_volume(mrml.scene, write_ras_nrrd(images[1], tmp_path / "flair.nrrd"), "FLAIR")
    segmentation, _ = corrected(mrml, images, flair_node)
    with pytest.raises(ValueError, match="do not overlap"):
        add_case_from_nodes(mrml.scene, AdaptationSet(tmp_path / "set"), t1_node, flair_node, segmentation)


def test_missing_volume_selection_is_refused(mrml, tmp_path, nodes):
    with pytest.raises(ValueError, match="select both a T1 and a FLAIR"):
        add_case_from_nodes(mrml.scene, AdaptationSet(tmp_path / "set"), None, nodes[1], None)


def test_same_scan_added_twice_gets_two_ids_and_removal_and_clear_delete_files(mrml, tmp_path, images, nodes):
    t1_node, flair_node = nodes
    segmentation, _ = corrected(mrml, images, flair_node)
    adaptation_set = AdaptationSet(tmp_path / "set")
    first = add_case_from_nodes(mrml.scene, adaptation_set, t1_node, flair_node, segmentation)
    second = add_case_from_nodes(mrml.scene, adaptation_set, t1_node, flair_node, segmentation)
    assert second.case_id == f"{first.case_id}_2"

    adaptation_set.remove(first.case_id)
    assert [c.case_id for c in adaptation_set.cases()] == [second.case_id]
    assert not first.flair.exists() and second.flair.exists()

    adaptation_set.clear()
    assert len(adaptation_set) == 0 and not second.flair.exists()
