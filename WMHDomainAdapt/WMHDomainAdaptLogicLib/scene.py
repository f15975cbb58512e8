"""A working MRML scene outside the Slicer application (batch runs without Slicer, tests).

Inside Slicer, use `slicer.mrmlScene`: Slicer has already registered the segmentation converter
rules and the default color tables. A bare `vtkMRMLScene` has neither; this holder creates the
logics that provide them and keeps them alive as long as the scene is used.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StandaloneScene:
    scene: object
    segmentations_logic: object
    color_logic: object


def standalone_scene() -> StandaloneScene:
    import slicer

    scene = slicer.vtkMRMLScene()
    segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations_logic.SetMRMLScene(scene)
    color_logic = slicer.vtkMRMLColorLogic()
    color_logic.SetMRMLScene(scene)
    color_logic.AddDefaultColorNodes()
    return StandaloneScene(scene, segmentations_logic, color_logic)
