"""The WMH segmentation node: appearance, FLAIR geometry, labelmap export, .seg.nrrd (real MRML)."""

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import slicerio
import vtk
from mrml_testing import REPO, load_volume, make_scene, oblique_image, write_ras_nrrd
from WMHDomainAdaptLogicLib.segmentation import (
    TERMINOLOGY_CONTEXT,
    WMH_COLOR,
    WMH_TERMINOLOGY,
    create_wmh_segmentation,
    fill_wmh_segmentation,
    pick_segment_id,
    segment_to_flair_labelmap,
    write_segmentation,
)
from WMHDomainAdaptLogicLib.volumes import ijk_to_world

TERMINOLOGY_FILE = REPO / "Resources" / "Terminology" / "WMHDomainAdapt-Terminology.term.json"


@pytest.fixture
def mrml():
    return make_scene()


@pytest.fixture
def flair_image():
    return oblique_image(size=(14, 11, 6), spacing=(0.8, 0.95, 3.5), degrees=31.0)


@pytest.fixture
def flair(mrml, tmp_path, flair_image):
    return load_volume(mrml.scene, write_ras_nrrd(flair_image, tmp_path / "flair.nrrd"), "FLAIR")


def blob_mask(image):
    return (sitk.GetArrayFromImage(image) > 850).astype(np.uint8)


def test_wmh_segment_has_its_name_color_terminology_and_the_flair_as_reference(mrml, flair,
                                                                              flair_image):
    node = create_wmh_segmentation(mrml.scene, blob_mask(flair_image), flair)
    segment = node.GetSegmentation().GetSegment(pick_segment_id(node))
    assert segment.GetName() == "WMH"
    assert segment.GetColor() == pytest.approx(WMH_COLOR)
    entry = slicer.vtkSlicerTerminologyEntry()
    terminologies = slicer.vtkSlicerTerminologiesModuleLogic()
    tag = vtk.reference("")  # the tag is what Slicer 5.8 reads (GetTerminology exists from 5.10)
    assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
    tag = tag.get()
    assert tag == segment.GetTerminology() == WMH_TERMINOLOGY
    assert terminologies.DeserializeTerminologyEntry(tag, entry)
    assert entry.GetTypeObject().GetCodeValue() == "52988006"  # SNOMED CT: Lesion
    assert entry.GetRegionObject().GetCodeMeaning() == "Cerebral white matter"
    assert node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is flair


def test_the_shipped_terminology_file_holds_the_wmh_segments_entry_for_the_editors_picker():
    terminologies = slicer.vtkSlicerTerminologiesModuleLogic()
    context = terminologies.LoadTerminologyFromFile(str(TERMINOLOGY_FILE))
    assert context == TERMINOLOGY_CONTEXT and WMH_TERMINOLOGY.startswith(context + "~")
    found = slicer.vtkSlicerTerminologyEntry()
    assert terminologies.FindTypeInTerminologyBy3dSlicerLabel(context, "white matter hyperintensity", found)
    ours = slicer.vtkSlicerTerminologyEntry()
    assert terminologies.DeserializeTerminologyEntry(WMH_TERMINOLOGY, ours)
    for part in ("GetCategoryObject", "GetTypeObject"):
        assert getattr(found, part)().GetCodeValue() == getattr(ours, part)().GetCodeValue()


def test_mask_comes_back_voxel_for_voxel_on_the_oblique_flair_grid(mrml, flair, flair_image):
    mask = blob_mask(flair_image)
    node = create_wmh_segmentation(mrml.scene, mask, flair)
    np.testing.assert_array_equal(segment_to_flair_labelmap(mrml.scene, node, flair), mask)


def test_segment_painted_on_another_grid_is_exported_onto_the_flair_grid(mrml, tmp_path, flair, flair_image):
    fine = sitk.Resample(flair_image, [2 * s for s in flair_image.GetSize()], sitk.Transform(),
                         sitk.sitkNearestNeighbor, flair_image.GetOrigin(),
                         [s / 2 for s in flair_image.GetSpacing()], flair_image.GetDirection())
    fine_node = load_volume(mrml.scene, write_ras_nrrd(fine, tmp_path / "fine.nrrd"), "fine")
    node = create_wmh_segmentation(mrml.scene, blob_mask(fine), fine_node)

    exported = segment_to_flair_labelmap(mrml.scene, node, flair)

    fine_mask = sitk.GetImageFromArray(blob_mask(fine).astype(np.uint8))
    fine_mask.CopyInformation(fine)
    expected = sitk.GetArrayFromImage(sitk.Resample(fine_mask, flair_image, sitk.Transform(),
                                                    sitk.sitkNearestNeighbor, 0))
    assert exported.shape == expected.shape and expected.sum() > 50
    overlap = 2 * (exported & expected).sum() / (exported.sum() + expected.sum())
    assert overlap > 0.99, overlap  # scattered voxels: a one-voxel shift or a flip falls far below


def test_seg_nrrd_written_is_read_identically_by_slicerio(mrml, tmp_path, flair, flair_image):
    mask = blob_mask(flair_image)
    node = create_wmh_segmentation(mrml.scene, mask, flair)
    path = tmp_path / "wmh.seg.nrrd"
    write_segmentation(node, path)

    read = slicerio.read_segmentation(str(path))

    (segment,) = read["segments"]
    assert segment["name"] == "WMH" and segment["color"] == pytest.approx(WMH_COLOR, abs=1e-3)
    assert segment["terminology"]["type"] == ["SCT", "52988006", "Lesion"]
    voxels = read["voxels"].transpose(2, 1, 0)  # slicerio: (i, j, k); ours: (k, j, i)
    offset = read["referenceImageExtentOffset"]
    assert list(offset) == [0, 0, 0]
    np.testing.assert_array_equal((voxels == segment["labelValue"]).astype(np.uint8), mask)
    lps_from_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    np.testing.assert_allclose(read["ijkToLPS"], lps_from_ras @ ijk_to_world(flair), atol=1e-5)


def test_empty_result_still_gives_a_wmh_segment_to_paint_in(mrml, flair, flair_image):
    node = create_wmh_segmentation(mrml.scene, np.zeros(sitk.GetArrayViewFromImage(flair_image).shape), flair)
    assert node.GetSegmentation().GetSegmentIdBySegmentName("WMH")
    assert not segment_to_flair_labelmap(mrml.scene, node, flair).any()


def test_refilling_keeps_the_users_other_segments(mrml, flair, flair_image):
    node = create_wmh_segmentation(mrml.scene, blob_mask(flair_image), flair)
    node.GetSegmentation().AddEmptySegment("other", "Other pathology")
    fill_wmh_segmentation(mrml.scene, node, np.zeros_like(blob_mask(flair_image)), flair)
    assert node.GetSegmentation().GetNumberOfSegments() == 2
    assert not segment_to_flair_labelmap(mrml.scene, node, flair).any()


def test_several_segments_none_named_wmh_are_refused_with_advice(mrml, flair):
    node = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "manual")
    node.GetSegmentation().AddEmptySegment("a", "lesion A")
    node.GetSegmentation().AddEmptySegment("b", "lesion B")
    with pytest.raises(ValueError, match="rename the lesion segment to 'WMH'"):
        pick_segment_id(node)


def test_result_is_placed_in_the_flairs_study(mrml, flair, flair_image):
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml.scene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "patient")
    study = hierarchy.CreateStudyItem(patient, "MRI 2024")
    hierarchy.CreateItem(study, flair)
    node = create_wmh_segmentation(mrml.scene, blob_mask(flair_image), flair)
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == study
