"""Per-subject anatomy: the MNI base under a random affine, elastic warp, flip and atrophy.

One template would give one brain; a network would learn where lesions may be instead of what
they look like. Each subject therefore pulls the template through its own deformation, built as a
map from each subject voxel to a template position, evaluated on a grid 2 mm coarse and
interpolated linearly (it is smooth), then used to sample every map with the same field so the
T1, the tissue fractions and the ventricles stay consistent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

from .fields import apply_separable, coarse_size, linear_upsample_matrix
from .template import Grid, Template

COARSE_STEP = 2  # voxels between evaluated deformation samples
CONTROL_POINTS = 7  # per axis, for the B-spline elastic warp


@dataclass
class Anatomy:
    """Tissue fractions and the template T1 of one subject on its 1 mm grid (z, y, x)."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    ventricles: np.ndarray  # bool
    deep_wm: np.ndarray  # bool: where deep lesion centres may go
    brain: np.ndarray  # float fraction
    info: dict = field(default_factory=dict)


def _affine_part(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Scale 0.9-1.1 per axis, +-8 degrees per axis, +-5 mm shift, a left-right flip half the time."""
    scale = rng.uniform(0.9, 1.1, 3)
    angles = rng.uniform(-8.0, 8.0, 3)
    shift = rng.uniform(-5.0, 5.0, 3)
    flip = bool(rng.random() < 0.5)
    rotation = Rotation.from_euler("zyx", angles, degrees=True).as_matrix()
    matrix = rotation @ np.diag(1.0 / scale)  # subject -> template: undo the subject's scaling
    if flip:
        matrix = matrix @ np.diag([1.0, 1.0, -1.0])  # mirror x (the last array axis)
    info = {"scale_zyx": scale.round(4).tolist(), "rotation_deg_zyx": angles.round(3).tolist(),
            "shift_mm_zyx": shift.round(3).tolist(), "flip_lr": flip}
    return matrix, shift, info


def _elastic_part(rng: np.random.Generator, points: np.ndarray, box_low: np.ndarray,
                  box_size: np.ndarray) -> tuple[np.ndarray, float]:
    """Cubic B-spline of a 7^3 grid of random control displacements, max 4-8 mm."""
    max_mm = float(rng.uniform(4.0, 8.0))
    control = rng.standard_normal((3, CONTROL_POINTS, CONTROL_POINTS, CONTROL_POINTS))
    control *= max_mm / np.abs(control).max()
    position = (points - box_low[:, None]) / box_size[:, None] * (CONTROL_POINTS - 1)
    displacement = np.stack([ndi.map_coordinates(c, position, order=3, mode="nearest") for c in control])
    return displacement, max_mm


def deformation(template: Template, grid: Grid, rng: np.random.Generator,
                atrophy_mm: float) -> tuple[np.ndarray, dict]:
    """Template positions (3, z, y, x) float32 for every voxel of the subject grid."""
    coarse = tuple(coarse_size(n, COARSE_STEP) for n in grid.shape)
    axes = [np.arange(c) * COARSE_STEP + s for c, s in zip(coarse, grid.start)]
    points = np.stack(np.meshgrid(*axes, indexing="ij")).reshape(3, -1).astype(float)
    box_low, box_high, centre = template.brain_low, template.brain_high, template.brain_centre
    matrix, shift, info = _affine_part(rng)
    source = matrix @ (points - centre[:, None]) + centre[:, None] + shift[:, None]
    displacement, info["elastic_max_mm"] = _elastic_part(rng, points, box_low, box_high - box_low)
    source += displacement
    pull = np.stack([ndi.map_coordinates(a, source, order=1, mode="nearest") for a in template.atrophy])
    source -= atrophy_mm * pull
    info["atrophy_mm"] = round(float(atrophy_mm), 3)
    source = source.reshape((3, *coarse)).astype(np.float32)
    matrices = tuple(linear_upsample_matrix(c, COARSE_STEP, n)
                     for c, n in zip(coarse, grid.shape))
    return np.stack([apply_separable(component, matrices) for component in source]), info


def _sample(volume: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    return ndi.map_coordinates(volume, coordinates, order=1, mode="constant", cval=0.0,
                               prefilter=False, output=np.float32)


def make_anatomy(template: Template, grid: Grid, rng: np.random.Generator,
                 atrophy_mm: float) -> Anatomy:
    """Warp all template maps with one deformation, then renormalise the tissue fractions
    (GM + WM + CSF = brain, CSF filling whatever atrophy opened up)."""
    coordinates, info = deformation(template, grid, rng, atrophy_mm)
    brain = np.clip(_sample(template.brain, coordinates), 0.0, 1.0)
    gm = np.clip(_sample(template.gm, coordinates), 0.0, 1.0)
    wm = np.clip(_sample(template.wm, coordinates), 0.0, 1.0)
    total = gm + wm
    over = total > brain
    ratio = np.where(over, brain / np.maximum(total, 1e-6), 1.0).astype(np.float32)
    gm *= ratio
    wm *= ratio
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    anatomy = Anatomy(t1=_sample(template.t1, coordinates), gm=gm, wm=wm, csf=csf,
                      ventricles=_sample(template.ventricles, coordinates) > 0.5,
                      deep_wm=_sample(template.deep_wm, coordinates) > 0.5, brain=brain, info=info)
    return anatomy
