"""The anatomical base: nilearn's MNI152 2009 template as tissue fractions on a 1 mm grid.

Only the anatomy of the benchmark is real. nilearn ships the ICBM152 2009 T1 and its GM and WM
probability maps inside its wheel, so they load offline. Everything a subject needs that does not
depend on the subject (CSF, ventricles, distance fields) is derived here once and cached in the
process: loading and deriving take a few seconds, a subject must not pay them again.

Arrays are (z, y, x) with y pointing anterior and x pointing right (the template is stored RAS);
the world geometry is written as LPS for SimpleITK.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

# Where the lateral ventricles may lie, in MNI mm (x, y, z): keeps sulcal CSF out of them.
VENTRICLE_BOX_MNI = ((-30.0, 30.0), (-50.0, 35.0), (-5.0, 35.0))
EPENDYMAL_RIM_MM = 2.0  # the GM map lines the ventricles; this rim is given to WM
ATROPHY_DECAY_MM = 15.0  # ventricular enlargement fades with e^(-d_v / 15 mm)
DEEP_WM_MIN_CORTEX_MM = 3.0  # deep lesions keep this far from cortex and sulcal CSF
BRAIN_MARGIN_MM = 4  # the "full" field of view is the brain's bounding box plus this margin


@dataclass(frozen=True)
class FieldOfView:
    """The part of the template a subject is made on: a box of `size_mm` (z, y, x) about the
    ventricles, or the whole brain when `size_mm` is None. Small boxes make fast test subjects."""

    name: str
    size_mm: tuple[int, int, int] | None = None


FIELDS_OF_VIEW = {
    "full": FieldOfView("full"),
    # Lateral ventricles, periventricular and much of the deep WM: a subject in about a second.
    "small": FieldOfView("small", (48, 112, 112)),
}


@dataclass
class Template:
    """Tissue maps and derived fields of the MNI base, all float32 (z, y, x) in [0, 1]."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    ventricles: np.ndarray
    deep_wm: np.ndarray  # 1 where a deep lesion may be centred (WM > 0.9, away from cortex)
    atrophy: np.ndarray  # (3, z, y, x): e^(-d_v/15) * grad d_v, the ventricular enlargement field
    affine_ras: np.ndarray  # 4x4, voxel (i=x, j=y, k=z) -> RAS mm
    brain_low: np.ndarray  # (z, y, x) first and last brain voxel, and the box's centre
    brain_high: np.ndarray
    ventricle_centre: np.ndarray  # (z, y, x) mean ventricle voxel

    @property
    def brain_centre(self) -> np.ndarray:
        return (self.brain_low + self.brain_high) / 2

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.t1.shape

    def mni_of_index(self, zyx: np.ndarray) -> np.ndarray:
        """MNI (x, y, z) mm of (z, y, x) voxel indices (last axis)."""
        ijk = np.asarray(zyx, dtype=float)[..., ::-1]
        return ijk @ self.affine_ras[:3, :3].T + self.affine_ras[:3, 3]

    def index_of_mni(self, xyz: np.ndarray) -> np.ndarray:
        """(z, y, x) voxel indices of MNI (x, y, z) mm points (last axis)."""
        inverse = np.linalg.inv(self.affine_ras)
        ijk = np.asarray(xyz, dtype=float) @ inverse[:3, :3].T + inverse[:3, 3]
        return ijk[..., ::-1]


def _load_nilearn() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from nilearn import datasets  # imported here: nilearn's import costs about a second

    images = [datasets.load_mni152_template(resolution=1),
              datasets.load_mni152_gm_template(resolution=1),
              datasets.load_mni152_wm_template(resolution=1)]
    arrays = [np.asarray(image.dataobj, dtype=np.float32).transpose(2, 1, 0) for image in images]
    return arrays[0], arrays[1], arrays[2], np.asarray(images[0].affine, dtype=float)


def _mni_box_mask(shape: tuple[int, int, int], affine_ras: np.ndarray, box) -> np.ndarray:
    axes = []
    for axis_xyz, (low, high) in enumerate(box):
        coordinate = np.arange(shape[2 - axis_xyz]) * affine_ras[axis_xyz, axis_xyz]
        coordinate = coordinate + affine_ras[axis_xyz, 3]
        axes.append((coordinate >= low) & (coordinate <= high))
    return axes[2][:, None, None] & axes[1][None, :, None] & axes[0][None, None, :]


def _ventricles(csf: np.ndarray, affine_ras: np.ndarray) -> np.ndarray:
    """CSF > 0.5 inside a central box; the two largest components are the lateral ventricles
    (with the third ventricle attached): about 23 mL on this template."""
    candidates = (csf > 0.5) & _mni_box_mask(csf.shape, affine_ras, VENTRICLE_BOX_MNI)
    labels, count = ndi.label(candidates)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    keep = np.argsort(sizes)[::-1][:2] + 1
    return np.isin(labels, keep)


def _atrophy_field(distance: np.ndarray) -> np.ndarray:
    """e^(-d_v/15) times the (smoothed) gradient of the distance to the ventricles."""
    smooth = ndi.gaussian_filter(distance, 1.0)
    gradient = np.stack(np.gradient(smooth)).astype(np.float32)
    gradient *= np.exp(-distance / ATROPHY_DECAY_MM)[None]
    return gradient


@lru_cache(maxsize=1)
def load_template() -> Template:
    """The MNI base with derived maps, loaded once per process (about 5 s, about 0.4 GB)."""
    t1, gm, wm, affine = _load_nilearn()
    brain = (t1 > 0).astype(np.float32)
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    ventricles = _ventricles(csf, affine)
    distance_v = ndi.distance_transform_edt(~ventricles).astype(np.float32)
    rim = (distance_v > 0) & (distance_v <= EPENDYMAL_RIM_MM)
    wm[rim] += gm[rim]
    gm[rim] = 0.0
    # The probability maps are averages of 152 brains: they leave 10-15 % GM inside the
    # ventricles, which would light them up on FLAIR. The ventricles' interior is pure CSF.
    interior = ndi.binary_erosion(ventricles)
    gm[interior] = 0.0
    wm[interior] = 0.0
    cortex = (gm > 0.5) | ((csf > 0.5) & ~ventricles) | (brain < 0.5)
    distance_c = ndi.distance_transform_edt(~cortex)
    deep_wm = ((wm > 0.9) & (distance_c > DEEP_WM_MIN_CORTEX_MM)).astype(np.float32)
    inside = np.argwhere(brain > 0)
    return Template(t1=t1, gm=gm, wm=wm, brain=brain, ventricles=ventricles.astype(np.float32),
                    deep_wm=deep_wm, atrophy=_atrophy_field(distance_v), affine_ras=affine,
                    brain_low=inside.min(0).astype(float), brain_high=inside.max(0).astype(float),
                    ventricle_centre=np.argwhere(ventricles).mean(0))


@dataclass(frozen=True)
class Grid:
    """A subject's 1 mm grid: a box of the template's index space, `start` + `shape` (z, y, x)."""

    start: tuple[int, int, int]
    shape: tuple[int, int, int]

    def origin_lps(self, template: Template) -> tuple[float, float, float]:
        ras = template.affine_ras @ np.array([*self.start[::-1], 1.0])
        return (-float(ras[0]), -float(ras[1]), float(ras[2]))

    def direction_lps(self, template: Template) -> tuple[float, ...]:
        """Direction cosines (row-major 3x3) of the template, flipped from RAS to LPS."""
        matrix = np.diag([-1.0, -1.0, 1.0]) @ template.affine_ras[:3, :3]
        matrix = matrix / np.linalg.norm(matrix, axis=0)
        return tuple(float(v) for v in matrix.ravel())


def grid_for(template: Template, fov: FieldOfView) -> Grid:
    """The box of `fov`: the brain's bounding box, or a box of the given size about the
    ventricles' centre (clipped to the template)."""
    shape = np.array(template.shape)
    if fov.size_mm is None:
        low = np.maximum(template.brain_low.astype(int) - BRAIN_MARGIN_MM, 0)
        high = np.minimum(template.brain_high.astype(int) + 1 + BRAIN_MARGIN_MM, shape)
        return Grid(tuple(int(v) for v in low), tuple(int(v) for v in high - low))
    size = np.minimum(np.array(fov.size_mm), shape)
    centre = template.ventricle_centre.copy()
    centre[0] += size[0] * 0.25  # more deep WM above the ventricles than below
    low = np.clip(np.round(centre - size / 2).astype(int), 0, shape - size)
    return Grid(tuple(int(v) for v in low), tuple(int(v) for v in size))
