"""The result segmentation: a "WMH" segment on the FLAIR grid, and its way back to a labelmap.

The segment carries a DICOM/SNOMED terminology (category Morphologically Altered Structure, type
Lesion, region Cerebral white matter) from the module's own terminology file
(Resources/Terminology, loaded at startup), so that the Segment Editor's picker finds it and
exported DICOM SEG names it properly. It is set as a tag, which Slicer 5.8 and 5.10 both read
(`vtkSegment.SetTerminology` exists only from 5.10).

Every result records where it came from (`Provenance`: model file and SHA-256, threshold, date,
library version) as node attributes, and the FLAIR it was computed on as a node reference, so a
later run can tell whose segmentation it is and never writes one patient's result into another's.

The segmentation's reference geometry is the FLAIR's: the Segment Editor then paints at FLAIR
resolution, and a corrected segment exports voxel for voxel onto the FLAIR grid.

`vtkSlicerSegmentationsModuleLogic`'s import/export methods are static; their converter rules are
registered once a segmentations logic has been given a scene (Slicer does this at startup; tests do
it in a fixture).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import slicer
import vtk
from slicer.util import arrayFromVolume

from .volumes import update_volume_on_grid_of

WMH_SEGMENT_NAME = "WMH"
WMH_COLOR = (1.0, 0.8, 0.0)  # yellow: visible over grey FLAIR, distinct from Slicer's red default
TERMINOLOGY_CONTEXT = "WMHDomainAdapt - White matter hyperintensities"  # Resources/Terminology/*.term.json
WMH_TERMINOLOGY = (
    f"{TERMINOLOGY_CONTEXT}"
    "~SCT^49755003^Morphologically Altered Structure"
    "~SCT^52988006^Lesion"
    "~^^"
    "~Anatomic codes - DICOM master list"
    "~SCT^68523003^Cerebral white matter"
    "~^^")


FLAIR_REFERENCE = "WMHDomainAdapt.FLAIR"  # node reference: segmentation -> the FLAIR it was made on
PROBABILITY_REFERENCE = "WMHDomainAdapt.Probability"  # node reference: FLAIR -> its probability map
ATTRIBUTE_PREFIX = "WMHDomainAdapt."


@dataclass(frozen=True)
class Provenance:
    """What made a WMH segmentation; stored as `WMHDomainAdapt.*` attributes of its node."""

    model: str  # file name
    model_sha256: str
    threshold: str  # as the worker reported it ("0.42"), or "" if it did not
    created: str  # ISO date and time
    library_version: str

    def describe(self) -> str:
        threshold = f", threshold {self.threshold}" if self.threshold else ""
        return (f"{self.model} (sha256 {self.model_sha256[:12]}){threshold}, {self.created}, "
                f"WMHDomainAdaptLib {self.library_version}")


def record_provenance(segmentation_node, provenance: Provenance, flair_node) -> None:
    for name, value in vars(provenance).items():
        segmentation_node.SetAttribute(ATTRIBUTE_PREFIX + name, str(value))
    segmentation_node.SetNodeReferenceID(FLAIR_REFERENCE, flair_node.GetID())


def read_provenance(segmentation_node) -> Provenance | None:
    """The recorded provenance, or None for a segmentation this module did not make."""
    values = {field.name: segmentation_node.GetAttribute(ATTRIBUTE_PREFIX + field.name)
              for field in fields(Provenance)}
    if any(value is None for value in values.values()):
        return None
    return Provenance(**values)


def flair_of(segmentation_node):
    """The FLAIR node this module segmented into `segmentation_node`, or None."""
    return segmentation_node.GetNodeReference(FLAIR_REFERENCE)


def check_belongs_to(segmentation_node, flair_node) -> None:
    """Refuse to write a result for `flair_node` into a segmentation made on another FLAIR."""
    owner = flair_of(segmentation_node)
    if owner is not None and owner is not flair_node:
        raise ValueError(f"'{segmentation_node.GetName()}' holds the result for FLAIR '{owner.GetName()}', "
                         f"not '{flair_node.GetName()}'; choose 'Create new segmentation' or a segmentation "
                         f"of this FLAIR")


def keep_previous_wmh(segmentation_node, label: str) -> str | None:
    """Rename the current WMH segment to "WMH (previous, <label>)" and hide it; return its new name.

    The next fill then creates a fresh WMH segment, and the user's earlier (maybe corrected) one
    stays in the node, where the Segment Editor can show, compare or restore it.
    """
    segment_id = wmh_segment_id(segmentation_node)
    if segment_id is None:
        return None
    segmentation = segmentation_node.GetSegmentation()
    base = f"{WMH_SEGMENT_NAME} (previous, {label})"
    name, number = base, 2
    while segmentation.GetSegmentIdBySegmentName(name):
        name, number = f"{base} {number}", number + 1
    segmentation.GetSegment(segment_id).SetName(name)
    display = segmentation_node.GetDisplayNode()
    if display is not None:
        display.SetSegmentVisibility(segment_id, False)
    return name


def _temporary_labelmap(scene, array: np.ndarray, reference_node):
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__wmh_temp__")
    update_volume_on_grid_of(labelmap, array.astype(np.uint8), reference_node)
    return labelmap


def _remove_with_display(scene, node) -> None:
    display = node.GetDisplayNode()
    color = display.GetColorNode() if display is not None else None
    if color is not None and color.GetScene() is scene and not color.GetSingletonTag():
        scene.RemoveNode(color)
    scene.RemoveNode(node)


def set_wmh_appearance(segment) -> None:
    """Name, color and terminology of the WMH segment."""
    segment.SetName(WMH_SEGMENT_NAME)
    segment.SetNameAutoGenerated(False)
    segment.SetColor(*WMH_COLOR)
    segment.SetColorAutoGenerated(False)
    segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), WMH_TERMINOLOGY)


def wmh_segment_id(segmentation_node, create: bool = False) -> str | None:
    """Id of the "WMH" segment; with `create`, an empty one is added when missing."""
    segmentation = segmentation_node.GetSegmentation()
    segment_id = segmentation.GetSegmentIdBySegmentName(WMH_SEGMENT_NAME)
    if segment_id:
        return segment_id
    if not create:
        return None
    free_id = WMH_SEGMENT_NAME if segmentation.GetSegment(WMH_SEGMENT_NAME) is None else ""
    segment_id = segmentation.AddEmptySegment(free_id, WMH_SEGMENT_NAME, WMH_COLOR)
    set_wmh_appearance(segmentation.GetSegment(segment_id))
    return segment_id


def show_segmentation(segmentation_node) -> None:
    """Display nodes exist so the result is visible in slice views (no-op without rendering)."""
    if segmentation_node.GetDisplayNode() is None:
        segmentation_node.CreateDefaultDisplayNodes()


def fill_wmh_segmentation(scene, segmentation_node, mask: np.ndarray, flair_node) -> str:
    """Replace the WMH segment's voxels with `mask` (a (z, y, x) array on the FLAIR grid).

    Other segments are left alone: a user may keep, say, an "Other pathology" segment next to it.
    Returns the WMH segment id.
    """
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(flair_node)
    segmentation_node.SetAndObserveTransformNodeID(flair_node.GetTransformNodeID())
    segment_id = wmh_segment_id(segmentation_node, create=True)
    labelmap = _temporary_labelmap(scene, (np.asarray(mask) > 0).astype(np.uint8), flair_node)
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
                labelmap, segmentation_node, ids):
            raise RuntimeError("importing the WMH mask into the segmentation failed")
    finally:
        _remove_with_display(scene, labelmap)
    set_wmh_appearance(segmentation_node.GetSegmentation().GetSegment(segment_id))
    show_segmentation(segmentation_node)
    return segment_id


def create_wmh_segmentation(scene, mask: np.ndarray, flair_node, name: str | None = None):
    """A new segmentation node holding the WMH segment, in the FLAIR's study."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                   name or scene.GenerateUniqueName(f"{flair_node.GetName()} WMH"))
    fill_wmh_segmentation(scene, node, mask, flair_node)
    place_in_study_of(scene, node, flair_node)
    return node


def place_in_study_of(scene, node, reference_node) -> bool:
    """Put `node` beside `reference_node` in the subject hierarchy (same study); False if it has none."""
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    reference_item = hierarchy.GetItemByDataNode(reference_node) if hierarchy else 0
    if not reference_item:
        return False
    parent = hierarchy.GetItemParent(reference_item)
    item = hierarchy.GetItemByDataNode(node) or hierarchy.CreateItem(parent, node)
    hierarchy.SetItemParent(item, parent)
    return True


def pick_segment_id(segmentation_node) -> str:
    """The segment the user corrected: the one named WMH, else the only one."""
    segmentation = segmentation_node.GetSegmentation()
    segment_id = wmh_segment_id(segmentation_node)
    if segment_id:
        return segment_id
    if segmentation.GetNumberOfSegments() == 1:
        return segmentation.GetNthSegmentID(0)
    raise ValueError(f"'{segmentation_node.GetName()}' has {segmentation.GetNumberOfSegments()} "
                     f"segments and none named '{WMH_SEGMENT_NAME}'; rename the lesion segment to "
                     f"'{WMH_SEGMENT_NAME}'")


def segment_to_flair_labelmap(scene, segmentation_node, flair_node,
                              segment_id: str | None = None) -> np.ndarray:
    """The segment as a uint8 0/1 (z, y, x) array on the FLAIR's voxel grid.

    Export goes through Slicer's own resampling into the FLAIR geometry (full FLAIR extent), so a
    segmentation painted at another resolution or under a transform still lands on FLAIR voxels.
    """
    segment_id = segment_id or pick_segment_id(segmentation_node)
    if segmentation_node.GetSegmentation().GetSegment(segment_id) is None:
        raise ValueError(f"segment '{segment_id}' not found in '{segmentation_node.GetName()}'")
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__wmh_export__")
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        full_extent = slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, ids, labelmap, flair_node, full_extent):
            raise RuntimeError(f"exporting '{segmentation_node.GetName()}' onto the FLAIR grid failed")
        array = np.array(arrayFromVolume(labelmap), copy=True)
    finally:
        _remove_with_display(scene, labelmap)
    flair_shape = tuple(reversed(flair_node.GetImageData().GetDimensions()))
    if array.shape != flair_shape:
        raise RuntimeError(f"exported labelmap shape {array.shape} differs from the FLAIR {flair_shape}")
    return (array > 0).astype(np.uint8)


def write_segmentation(segmentation_node, path: str) -> None:
    """Save as .seg.nrrd through Slicer's storage node (what Slicer's Save dialog writes)."""
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(True)
    if not storage.WriteData(segmentation_node):
        raise RuntimeError(f"cannot write segmentation to {path}")
