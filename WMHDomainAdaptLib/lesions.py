"""Lesions of a binary mask: 26-connected components, small ones removed, volume and count.

One place for what a "lesion" is, so that the WMH-challenge metrics, the patch sampler, the
segmentation's reported count and the Slicer module's statistics all count the same things.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class LesionStatistics:
    volume_ml: float
    count: int


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components: (label array, number of components)."""
    image = sitk.GetImageFromArray(np.asarray(mask).astype(np.uint8, copy=False))
    array = sitk.GetArrayFromImage(sitk.ConnectedComponent(image, True))
    return array, int(array.max())


def lesion_statistics(mask: np.ndarray, spacing_xyz) -> LesionStatistics:
    """Volume in mL and number of 26-connected lesions of a binary (z, y, x) mask."""
    binary = np.asarray(mask) > 0
    count = components(binary)[1] if binary.any() else 0
    return LesionStatistics(float(binary.sum()) * float(np.prod(spacing_xyz)) / 1000.0, count)


def without_small_lesions(mask: np.ndarray, spacing_xyz, min_volume_mm3: float) -> tuple[np.ndarray, int]:
    """The mask without lesions under `min_volume_mm3`, and how many lesions it keeps (one pass)."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return mask, 0
    labels, count = components(mask)
    if min_volume_mm3 <= 0:
        return mask, count
    keep = np.bincount(labels.ravel()) * float(np.prod(spacing_xyz)) >= min_volume_mm3
    keep[0] = False
    return keep[labels], int(keep.sum())
