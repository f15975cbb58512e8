"""Volume nodes <-> SimpleITK images with exact geometry.

Slicer keeps a volume's geometry as an IJK-to-RAS matrix (possibly oblique, possibly under a parent
transform); SimpleITK and every file the library reads are LPS. Misaligned or flipped results are
the most common complaint about segmentation extensions, so the conversion lives in one place and
is tested against Slicer's own storage nodes on oblique, anisotropic volumes.

Arrays are (k, j, i) = (z, y, x), the order both `slicer.util.arrayFromVolume` and SimpleITK use.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import vtk
from slicer.util import arrayFromVolume, updateVolumeFromArray

from WMHDomainAdaptLib.io import read_image

RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0])  # its own inverse
ORTHONORMAL_TOLERANCE = 1e-4


def matrix_to_numpy(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def numpy_to_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def ijk_to_world(volume_node) -> np.ndarray:
    """The 4x4 IJK-to-world (RAS) matrix, including a linear parent transform.

    A user who aligned the T1 to the FLAIR with an unhardened linear transform expects that
    alignment to be used; a non-linear one cannot be expressed as an image grid, so it is refused.
    """
    local = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(local)
    parent = volume_node.GetParentTransformNode()
    if parent is None:
        return matrix_to_numpy(local)
    if not parent.IsTransformToWorldLinear():
        raise ValueError(f"'{volume_node.GetName()}' is under a non-linear transform; "
                         "harden the transform first (Data module, right-click, Harden transform)")
    to_world = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(to_world)
    return matrix_to_numpy(to_world) @ matrix_to_numpy(local)


def geometry_from_ijk_to_ras(matrix: np.ndarray) -> tuple[tuple, tuple, tuple]:
    """(spacing, LPS origin, LPS direction as a flat row-major 9-tuple) of an IJK-to-RAS matrix."""
    axes = matrix[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0):
        raise ValueError("volume has a zero voxel spacing")
    direction_ras = axes / spacing
    if not np.allclose(direction_ras.T @ direction_ras, np.eye(3), atol=ORTHONORMAL_TOLERANCE):
        raise ValueError("volume axes are sheared or scaled by a transform; harden and resample it first")
    direction_lps = RAS_FROM_LPS @ direction_ras
    origin_lps = RAS_FROM_LPS @ matrix[:3, 3]
    return tuple(spacing.tolist()), tuple(origin_lps.tolist()), tuple(direction_lps.flatten().tolist())


def ijk_to_ras_from_image(image: sitk.Image) -> np.ndarray:
    """The IJK-to-RAS matrix of a SimpleITK image's grid."""
    direction_lps = np.array(image.GetDirection()).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = RAS_FROM_LPS @ direction_lps @ np.diag(image.GetSpacing())
    matrix[:3, 3] = RAS_FROM_LPS @ np.array(image.GetOrigin())
    return matrix


def volume_to_image(volume_node) -> sitk.Image:
    """A scalar volume node as a SimpleITK image in world (LPS) coordinates; voxels are copied."""
    if volume_node is None or volume_node.GetImageData() is None:
        raise ValueError("volume has no voxel data")
    if volume_node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise ValueError(f"'{volume_node.GetName()}' is not a scalar volume")
    array = np.array(arrayFromVolume(volume_node), copy=True)
    if array.ndim != 3 or min(array.shape) < 2:
        raise ValueError(f"'{volume_node.GetName()}' must be a 3D volume, got shape {array.shape}")
    spacing, origin, direction = geometry_from_ijk_to_ras(ijk_to_world(volume_node))
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def update_volume_from_image(volume_node, image: sitk.Image) -> None:
    """Put a SimpleITK image's voxels and geometry into a volume node (no parent transform)."""
    updateVolumeFromArray(volume_node, sitk.GetArrayFromImage(image))
    volume_node.SetIJKToRASMatrix(numpy_to_matrix(ijk_to_ras_from_image(image)))
    volume_node.SetAndObserveTransformNodeID(None)


def update_volume_on_grid_of(volume_node, array: np.ndarray, reference_node) -> None:
    """Put an array on the reference node's own voxel grid, under the reference's parent transform.

    Results computed on the FLAIR grid go back exactly where the FLAIR is, voxel for voxel, even
    when the FLAIR sits under a transform.
    """
    reference_shape = tuple(reversed(reference_node.GetImageData().GetDimensions()))
    if tuple(array.shape) != reference_shape:
        raise ValueError(f"result shape {array.shape} differs from '{reference_node.GetName()}' "
                         f"{reference_shape}")
    updateVolumeFromArray(volume_node, array)
    matrix = vtk.vtkMatrix4x4()
    reference_node.GetIJKToRASMatrix(matrix)
    volume_node.SetIJKToRASMatrix(matrix)
    volume_node.SetAndObserveTransformNodeID(reference_node.GetTransformNodeID())


def same_grid_as_node(image: sitk.Image, volume_node, tolerance: float = 1e-4) -> bool:
    """True when a SimpleITK image lies exactly on the node's world grid."""
    dimensions = volume_node.GetImageData().GetDimensions()
    spacing, origin, direction = geometry_from_ijk_to_ras(ijk_to_world(volume_node))
    return (tuple(image.GetSize()) == tuple(dimensions)
            and np.allclose(image.GetSpacing(), spacing, atol=tolerance)
            and np.allclose(image.GetOrigin(), origin, atol=tolerance)
            and np.allclose(image.GetDirection(), direction, atol=tolerance))


def load_volume(scene, path, name: str | None = None, labelmap: bool = False):
    """Read an image file through Slicer's volume storage node, as Slicer's Add Data does.

    The file is first checked by the library's reader, which refuses what ITK would read silently
    wrong (a cut-off NIfTI read with zeros, disagreeing qform and sform, NaN voxels)."""
    read_image(path, name or "volume")
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode",
                                   name or scene.GenerateUniqueName("volume"))
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise ValueError(f"{path}: Slicer cannot read this volume")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node
