"""Any storage orientation in, axial slices for the network, outputs back on the input's own grid.

The network reads axial slices: the array's first axis must run foot to head. 3D FLAIRs are often
stored sagittally or coronally, and were then cut into sagittal or coronal slices. `Reorientation`
permutes and flips the voxel axes so that the stored axes run as close as possible to the world's
x, y and z, in the directions of TRAINING_STORAGE: NIfTI's canonical RAS+ storage (index i towards
the right, j towards the front, k towards the head; ITK direction diag(-1, -1, 1)), which is how
the training scans and most converted clinical NIfTIs are stored, so those are left as they are.
Only indices move, so every voxel keeps its exact world position and intensity; the inverse puts a
mask back onto the input's grid voxel for voxel, and the outputs are then given the input image's
own spacing, origin and direction.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

TRAINING_STORAGE = (-1.0, -1.0, 1.0)  # sign of each index axis along world x, y, z (ITK's LPS)


@dataclass(frozen=True)
class Reorientation:
    """How to go from an input's stored array (z, y, x) to the axial one, and back.

    `axes[n]` is the input array axis that becomes axial array axis n; `flips[n]` whether it is
    reversed. For an image already stored axially (the usual case) both are the identity.
    """

    axes: tuple[int, int, int] = (0, 1, 2)
    flips: tuple[bool, bool, bool] = (False, False, False)

    @classmethod
    def of(cls, image: sitk.Image) -> Reorientation:
        """The permutation (and flips) that stores `image` as the training scans are stored."""
        direction = np.asarray(image.GetDirection(), float).reshape(3, 3)  # column c: index axis c
        best = max(itertools.permutations(range(3)),
                   key=lambda order: sum(abs(direction[world, order[world]]) for world in range(3)))
        # best[w]: the index axis (i, j, k) nearest world axis w; numpy axes are reversed (k, j, i)
        axes = tuple(2 - best[world] for world in (2, 1, 0))
        flips = tuple(bool(direction[world, best[world]] * TRAINING_STORAGE[world] < 0)
                      for world in (2, 1, 0))
        return cls(axes, flips)

    @property
    def is_identity(self) -> bool:
        return self.axes == (0, 1, 2) and not any(self.flips)

    def to_axial(self, array: np.ndarray) -> np.ndarray:
        """An array on the input's grid, (z, y, x) or (channels, z, y, x), as the axial grid holds it."""
        if self.is_identity:
            return array
        lead = array.ndim - 3
        moved = np.transpose(array, tuple(range(lead)) + tuple(lead + a for a in self.axes))
        flipped = tuple(lead + n for n in range(3) if self.flips[n])
        return np.ascontiguousarray(np.flip(moved, flipped) if flipped else moved)

    def to_input(self, array: np.ndarray) -> np.ndarray:
        """The inverse of `to_axial`: an axial-grid array back on the input's own grid."""
        if self.is_identity:
            return array
        lead = array.ndim - 3
        flipped = tuple(lead + n for n in range(3) if self.flips[n])
        unflipped = np.flip(array, flipped) if flipped else array
        inverse = tuple(lead + int(a) for a in np.argsort(self.axes))
        return np.ascontiguousarray(np.transpose(unflipped, tuple(range(lead)) + inverse))

    def axial_image(self, image: sitk.Image) -> sitk.Image:
        """`image` stored axially: the same voxels at the same world positions, indices permuted."""
        if self.is_identity:
            return image
        axial = sitk.GetImageFromArray(self.to_axial(sitk.GetArrayViewFromImage(image)))
        direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
        spacing = np.asarray(image.GetSpacing(), float)
        size = np.asarray(image.GetSize())
        corner = [0, 0, 0]  # the input's (i, j, k) index of the axial grid's first voxel
        columns, new_spacing = [], []
        for new_index_axis in range(3):  # axial i, j, k = numpy axes 2, 1, 0
            numpy_axis = 2 - new_index_axis
            old_index_axis = 2 - self.axes[numpy_axis]
            sign = -1.0 if self.flips[numpy_axis] else 1.0
            if self.flips[numpy_axis]:
                corner[old_index_axis] = int(size[old_index_axis]) - 1
            columns.append(sign * direction[:, old_index_axis])
            new_spacing.append(spacing[old_index_axis])
        axial.SetSpacing(new_spacing)
        axial.SetDirection(np.stack(columns, axis=1).ravel().tolist())
        axial.SetOrigin(image.TransformIndexToPhysicalPoint(corner))
        return axial

    def input_image(self, array: np.ndarray, original: sitk.Image) -> sitk.Image:
        """An axial-grid array as an image on `original`'s grid, with its exact geometry."""
        image = sitk.GetImageFromArray(self.to_input(array))
        image.CopyInformation(original)
        return image
