"""White matter hyperintensities: periventricular caps and rims plus punctate deep lesions.

Real WMH are not random blobs: most hug the ventricles (caps at the frontal and occipital horns,
a rim along the bodies, a confluent halo at high load) and the rest are small deep lesions in
the centrum semiovale, many punctate and few large. The truth is made at 1 mm; the images see a
soft (partial-volume) version of it, and each lesion gets its own T2 and T1 contrast so that no
single intensity identifies a lesion. Nothing here looks at the acquisition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

from .anatomy import Anatomy
from .fields import smooth_noise

LOAD_RANGE_ML = (0.5, 60.0)  # total lesion volume, log-uniform
PV_SHARE = (0.6, 0.9)  # fraction of the load that is periventricular
DEEP_MEDIAN_MM3, DEEP_SIGMA_LOG, DEEP_CLIP_MM3 = 30.0, 1.0, (3.0, 3000.0)
VENTRICLE_MARGIN_MM = 32  # d_v is computed this far around the ventricles, "far" beyond
T1_DARKENING_MAX = 0.15  # lesions are 0-15 % darker on T1 ...
T1_VISIBLE_MM3 = (30.0, 1000.0)  # ... invisible below 30 mm3, fully so above 1000 mm3
T2_HETEROGENEITY = 0.15  # per-lesion T2 factor in 1 +- 0.15
DAWM_T2_GAIN = (0.10, 0.20)  # unlabelled "dirty-appearing WM" shell: WM T2 up by 10-20 %
SOFT_EDGE = (0.15, 0.65)  # smoothed-truth values mapped to lesion fraction 0 and 1


@dataclass
class Lesions:
    """Lesion truth and the maps the contrast model needs, on the subject's 1 mm grid."""

    truth: np.ndarray  # bool, the 1 mm ground truth
    fraction: np.ndarray  # f_L: soft lesion fraction of the WM (partial volume)
    t2_factor: np.ndarray  # per-voxel lesion T2 multiplier (per-lesion heterogeneity)
    t1_darkening: np.ndarray  # per-voxel relative T1 darkening, already times f_L
    dawm: np.ndarray  # 0-1 shell around lesions where WM T2 rises (unlabelled)
    dawm_gain: float
    info: dict = field(default_factory=dict)


def sample_load(rng: np.random.Generator, wm_share: float = 1.0) -> float:
    """Total lesion volume in mL, log-uniform over LOAD_RANGE_ML, times the share of the
    template's WM inside the field of view (a cropped subject keeps a realistic density)."""
    low, high = np.log(LOAD_RANGE_ML[0]), np.log(LOAD_RANGE_ML[1])
    return float(np.exp(rng.uniform(low, high))) * wm_share


def load_fraction(volume_ml: float) -> float:
    """Where a load sits in LOAD_RANGE_ML on a log scale, 0 to 1 (drives atrophy and lambda)."""
    low, high = np.log(LOAD_RANGE_ML[0]), np.log(LOAD_RANGE_ML[1])
    return float(np.clip((np.log(max(volume_ml, 1e-6)) - low) / (high - low), 0.0, 1.0))


def ventricle_distance(ventricles: np.ndarray) -> np.ndarray:
    """Distance to the ventricles (mm), exact within VENTRICLE_MARGIN_MM of them, that value beyond."""
    distance = np.full(ventricles.shape, float(VENTRICLE_MARGIN_MM), dtype=np.float32)
    where = np.argwhere(ventricles)
    if where.size == 0:
        return distance
    low = np.maximum(where.min(0) - VENTRICLE_MARGIN_MM, 0)
    high = np.minimum(where.max(0) + 1 + VENTRICLE_MARGIN_MM, ventricles.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    inner = ndi.distance_transform_edt(~ventricles[box]).astype(np.float32)
    distance[box] = np.minimum(inner, VENTRICLE_MARGIN_MM)
    return distance


def _top_voxels(score: np.ndarray, allowed: np.ndarray, count: int) -> np.ndarray:
    """The `count` allowed voxels of highest score (the quantile threshold tau of the recipe)."""
    result = np.zeros(score.shape, dtype=bool)
    flat = np.flatnonzero(allowed)
    count = int(min(count, flat.size))
    if count <= 0:
        return result
    chosen = flat[np.argpartition(score.ravel()[flat], flat.size - count)[flat.size - count:]]
    result.ravel()[chosen] = True
    return result


def periventricular(anatomy: Anatomy, distance_v: np.ndarray, volume_mm3: float, lam: float,
                    rng: np.random.Generator) -> np.ndarray:
    """F_pv = e^(-d_v/lambda) (1 + 1.5 H) e^(0.5 G_4); the top V_pv voxels become the lesion."""
    ventricle_y = np.nonzero(anatomy.ventricles)[1]
    y = np.arange(anatomy.wm.shape[1], dtype=np.float32)
    if ventricle_y.size:
        anterior, posterior = np.percentile(ventricle_y, 99), np.percentile(ventricle_y, 1)
        horns = (np.exp(-((y - anterior) ** 2) / (2 * 8.0**2))
                 + np.exp(-((y - posterior) ** 2) / (2 * 10.0**2)))
    else:
        horns = np.zeros_like(y)
    score = np.exp(-distance_v / lam) * (1 + 1.5 * horns[None, :, None])
    score *= np.exp(0.5 * smooth_noise(score.shape, 4.0, rng))
    allowed = (anatomy.wm > 0.5) & ~anatomy.ventricles & (anatomy.brain > 0.5)
    allowed &= distance_v < VENTRICLE_MARGIN_MM
    return _top_voxels(score, allowed, int(round(volume_mm3)))


def _one_deep_lesion(volume: float, rng: np.random.Generator) -> np.ndarray:
    """An ellipsoid of `volume` mm3, radii scaled by U(0.7, 1.4), randomly rotated, with a
    0.3 G_1.5 ragged edge; returned as a boolean box centred on the lesion."""
    radii = (3 * volume / (4 * np.pi)) ** (1 / 3) * rng.uniform(0.7, 1.4, 3)
    half = int(np.ceil(radii.max() * 1.3 + 2))
    axis = np.arange(-half, half + 1, dtype=np.float32)
    offsets = np.stack(np.meshgrid(axis, axis, axis, indexing="ij")).reshape(3, -1)
    rotated = Rotation.random(random_state=rng).as_matrix().T @ offsets
    inside = ((rotated / radii[:, None]) ** 2).sum(0).reshape((2 * half + 1,) * 3)
    return inside + 0.3 * smooth_noise(inside.shape, 1.5, rng) < 1.0


def deep(anatomy: Anatomy, distance_v: np.ndarray, volume_mm3: float,
         rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """N ~ Poisson(V_deep / E[V_i]) lesions of lognormal size centred in deep WM, clipped to WM > 0.5."""
    mean_size = DEEP_MEDIAN_MM3 * np.exp(DEEP_SIGMA_LOG**2 / 2)
    count = int(rng.poisson(volume_mm3 / mean_size))
    result = np.zeros(anatomy.wm.shape, dtype=bool)
    centres = np.argwhere(anatomy.deep_wm & (distance_v > 10.0))
    if count == 0 or centres.size == 0:
        return result, 0
    sizes = np.clip(np.exp(rng.normal(np.log(DEEP_MEDIAN_MM3), DEEP_SIGMA_LOG, count)), *DEEP_CLIP_MM3)
    shape = np.array(result.shape)
    for size, centre in zip(sizes, centres[rng.integers(0, len(centres), count)]):
        blob = _one_deep_lesion(float(size), rng)
        half = blob.shape[0] // 2
        low, high = centre - half, centre + half + 1
        clip_low, clip_high = np.maximum(low, 0), np.minimum(high, shape)
        target = tuple(slice(a, b) for a, b in zip(clip_low, clip_high))
        source = tuple(slice(a - lo, b - lo) for a, b, lo in zip(clip_low, clip_high, low))
        result[target] |= blob[source]
    return result & (anatomy.wm > 0.5), count


def soft_fraction(truth: np.ndarray) -> np.ndarray:
    """f_L: the truth smoothed by G_0.7 and stretched so a lesion's interior is pure lesion and
    its edge voxels partial (the recipe's clip(G_0.7 * L) leaves even the interior of thin
    periventricular rims at 60-70 % lesion, which washes out their contrast)."""
    smooth = ndi.gaussian_filter(truth.astype(np.float32), 0.7)
    return np.clip((smooth - SOFT_EDGE[0]) / (SOFT_EDGE[1] - SOFT_EDGE[0]), 0.0, 1.0)


def _size_visibility(volume_mm3: np.ndarray) -> np.ndarray:
    low, high = np.log(T1_VISIBLE_MM3[0]), np.log(T1_VISIBLE_MM3[1])
    return np.clip((np.log(np.maximum(volume_mm3, 1.0)) - low) / (high - low), 0.0, 1.0)


def per_lesion_maps(truth: np.ndarray, fraction: np.ndarray, rng: np.random.Generator):
    """Per-lesion T2 factor and T1 darkening, spread over each lesion's partial-volume edge by
    normalised convolution (so the edge takes its own lesion's value)."""
    labels, count = ndi.label(truth, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(labels.ravel(), minlength=count + 1).astype(float)
    t2_lookup = np.concatenate([[0.0], rng.uniform(1 - T2_HETEROGENEITY, 1 + T2_HETEROGENEITY, count)])
    dark_lookup = np.concatenate(
        [[0.0], rng.uniform(0.0, T1_DARKENING_MAX, count) * _size_visibility(sizes[1:])])
    weight = ndi.gaussian_filter(truth.astype(np.float32), 0.7)
    safe = np.maximum(weight, 1e-4)
    t2 = ndi.gaussian_filter(t2_lookup[labels].astype(np.float32), 0.7) / safe
    dark = ndi.gaussian_filter(dark_lookup[labels].astype(np.float32), 0.7) / safe
    t2 = np.where(weight > 1e-4, t2, 1.0).astype(np.float32)
    dark = (np.where(weight > 1e-4, dark, 0.0) * fraction).astype(np.float32)
    return t2, dark, count


def make_lesions(anatomy: Anatomy, rng: np.random.Generator, total_ml: float) -> Lesions:
    """Lesion truth and appearance maps for a total load of `total_ml` mL."""
    load = load_fraction(total_ml)
    pv_share = float(rng.uniform(*PV_SHARE))
    lam = float(3.0 + 5.0 * np.clip(load + rng.uniform(-0.15, 0.15), 0.0, 1.0))  # 3-8 mm
    distance_v = ventricle_distance(anatomy.ventricles)
    pv = periventricular(anatomy, distance_v, total_ml * 1000 * pv_share, lam, rng)
    deep_truth, n_deep = deep(anatomy, distance_v, total_ml * 1000 * (1 - pv_share), rng)
    truth = pv | deep_truth
    fraction = soft_fraction(truth) * (anatomy.wm > 0.2)
    t2_factor, darkening, n_components = per_lesion_maps(truth, fraction, rng)
    dawm = np.clip(2 * ndi.gaussian_filter(truth.astype(np.float32), 1.5), 0, 1) * (1 - fraction)
    info = {"load_requested_ml": round(total_ml, 4), "pv_share": round(pv_share, 4),
            "lambda_mm": round(lam, 3), "pv_ml": float(pv.sum()) / 1000,
            "deep_ml": float((deep_truth & ~pv).sum()) / 1000, "n_deep": n_deep,
            "truth_ml": float(truth.sum()) / 1000, "n_components_1mm": n_components}
    return Lesions(truth=truth, fraction=fraction.astype(np.float32), t2_factor=t2_factor,
                   t1_darkening=darkening, dawm=dawm.astype(np.float32),
                   dawm_gain=float(rng.uniform(*DAWM_T2_GAIN)), info=info)
