"""Shared helpers for the Slicer-module tests: a real MRML scene and oblique test volumes.

A scene needs a segmentations logic (it registers the labelmap/closed-surface converter rules) and
a color logic (default color tables for labelmap export); `make_scene` is the module's own
`standalone_scene`, whose result keeps both alive.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer")  # CI installs slicer-core; this only guards a bare checkout

import nrrd  # noqa: E402  (pynrrd, a slicerio dependency)
import SimpleITK as sitk  # noqa: E402
import slicer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "WMHDomainAdapt"
for path in (str(MODULE_DIR), str(MODULE_DIR / "Scripts")):
    if path not in sys.path:
        sys.path.insert(0, path)


from WMHDomainAdaptLogicLib.scene import standalone_scene as make_scene  # noqa: E402, F401  (the module's own)


def rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    angle = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def oblique_image(size=(12, 10, 7), spacing=(0.9, 1.1, 3.0), degrees: float = 23.0,
                  origin=(-40.5, 12.25, -7.0), dtype=np.int16, seed: int = 0) -> sitk.Image:
    """An anisotropic volume whose axes are rotated about an oblique axis; voxels are random."""
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 1000, size=size[::-1]).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(rotation((1.0, 0.4, 0.2), degrees).flatten().tolist())
    return image


def write_ras_nrrd(image: sitk.Image, path: Path) -> Path:
    """Write a NRRD whose header is in RAS space (as some scanners' converters do)."""
    flip = np.diag([-1.0, -1.0, 1.0])
    direction = np.array(image.GetDirection()).reshape(3, 3)
    space_directions = (flip @ direction @ np.diag(image.GetSpacing())).T  # one row per axis
    header = {"space": "right-anterior-superior",
              "space directions": space_directions,
              "space origin": flip @ np.array(image.GetOrigin()),
              "kinds": ["domain", "domain", "domain"]}
    nrrd.write(str(path), sitk.GetArrayFromImage(image).transpose(2, 1, 0), header)
    return path


def load_volume(scene, path: Path, name: str, labelmap: bool = False):
    """Read a file through Slicer's volume storage node, as Slicer's Add Data does."""
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode",
                                   name)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node), f"Slicer could not read {path}"
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def assert_same_image(actual: sitk.Image, expected: sitk.Image, atol: float = 1e-5) -> None:
    assert actual.GetSize() == expected.GetSize()
    np.testing.assert_allclose(actual.GetSpacing(), expected.GetSpacing(), atol=atol)
    np.testing.assert_allclose(actual.GetOrigin(), expected.GetOrigin(), atol=atol)
    np.testing.assert_allclose(actual.GetDirection(), expected.GetDirection(), atol=atol)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(actual), sitk.GetArrayViewFromImage(expected))
