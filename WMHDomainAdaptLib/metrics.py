"""The MICCAI 2017 WMH Segmentation Challenge metrics (Kuijf et al., IEEE TMI 2019).

The definitions mirror the challenge's own evaluation script, so that our numbers can be set
beside published ones (the paper's and the challenge's, docs/experiments.md):

- Label 2 ("other pathology") in the reference is masked out of the prediction and ignored;
  the reference WMH is label 1 only. A prediction is binarized as the challenge does: integer
  voxels >= 1, floating-point voxels >= 0.5.
- DSC = 2|P and R| / (|P| + |R|).
- HD95 (mm): the boundary of a mask is the mask minus its in-plane binary erosion (SimpleITK
  `BinaryErode` with radius (1, 1, 0), i.e. a 3x3 square in x and y, voxels outside the image
  counting as foreground, exactly as the challenge calls it). Distances are physical, with the
  reference's anisotropic spacing; HD95 is the larger of the two directed 95th percentiles
  (linear interpolation, as `numpy.percentile`) of nearest-boundary distances. The challenge
  used a KD-tree; here an exact Euclidean distance transform of one boundary (Maurer, in mm) is
  sampled at the other boundary's voxels, which gives the same distances in linear time.
- AVD (%) = |V_R - V_P| / V_R x 100.
- Lesions are 3D connected components with 26-connectivity. Recall = reference lesions that
  overlap the prediction / reference lesions; precision = predicted lesions that overlap the
  reference / predicted lesions; F1 = 2PR / (P + R).

Edge cases. The challenge's script defines only some of them; the rest are our decisions, chosen
so that summaries (which skip NaN and report a count) never mix in arbitrary numbers:

| case | DSC | HD95 | AVD | recall | precision | F1 |
|---|---|---|---|---|---|---|
| prediction empty, reference not | 0 | NaN [c] | 100 | 0 | 1 [c] | 0 |
| reference empty, prediction not | 0 | NaN [a] | NaN [b] | 1 [c] | 0 | 0 |
| both empty | 1 [d] | NaN | NaN | 1 | 1 | 1 |

[c] the challenge's rule. [a] ours: there is no reference boundary to measure a distance to.
[b] ours: a volume difference relative to V_R = 0 is undefined. [d] ours: perfect agreement.

A mask that fills whole planes to the image edge can have an empty boundary; HD95 is then NaN too.

The prediction is compared voxel by voxel on the reference's grid, as in the challenge: the sizes
must match, and the prediction's own header (spacing, origin, direction) is not used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .io import read_image
from .lesions import components

METRIC_NAMES = ("dsc", "hd95", "avd", "recall", "f1")
BOUNDARY_RADIUS_XYZ = (1, 1, 0)
REFERENCE_VALUES = (0, 1, 2)


def binarize_prediction(prediction: np.ndarray) -> np.ndarray:
    """The challenge's binarization: integer labels >= 1, probabilities / floats >= 0.5."""
    if prediction.dtype.kind == "b":
        return prediction
    return prediction >= (0.5 if prediction.dtype.kind == "f" else 1)


def _as_image(mask: np.ndarray, spacing_xyz: tuple[float, float, float]) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8, copy=False))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    return image


def pooled_dice(probabilities: Iterable[np.ndarray], labels: Iterable[np.ndarray],
                threshold: float = 0.5) -> float:
    """Dice over all voxels of all cases together (stable with few, small lesions); label 2 ignored."""
    overlap = total = 0
    for probability, label in zip(probabilities, labels):
        predicted, truth = probability >= threshold, label == 1
        predicted &= label != 2
        overlap += int((predicted & truth).sum())
        total += int(predicted.sum() + truth.sum())
    return 2.0 * overlap / total if total else 1.0


def dice_curve(probability: np.ndarray, label: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """One scan's Dice at each threshold (a sorted pass, not one mask per threshold); label 2 ignored."""
    counted = label != 2
    lesion = np.sort(probability[label == 1])
    scored = np.sort(probability[counted], axis=None)
    true_positives = len(lesion) - np.searchsorted(lesion, thresholds)
    predicted = len(scored) - np.searchsorted(scored, thresholds)
    return 2 * true_positives / np.maximum(predicted + len(lesion), 1)


def dice(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Dice similarity coefficient of two boolean masks; 1 when both are empty."""
    total = int(prediction.sum()) + int(reference.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(prediction, reference).sum()) / total


def boundary(mask: np.ndarray) -> np.ndarray:
    """Mask minus its in-plane erosion: the outer voxels of each lesion in every slice.

    Same result as the challenge's `sitk.BinaryErode(mask, (1, 1, 0))` (a 3x3 square in x and y;
    voxels beyond the image edge count as foreground), computed with nine shifted ANDs because
    ITK's morphology takes about ten times longer on a whole brain.
    """
    mask = np.asarray(mask, dtype=bool)
    ny, nx = mask.shape[1:]
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)), constant_values=True)
    eroded = mask.copy()
    for dy in range(3):
        for dx in range(3):
            eroded &= padded[:, dy:dy + ny, dx:dx + nx]
    return mask & ~eroded


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box holding every True voxel of a non-empty mask."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _distance_to(points: np.ndarray, target: np.ndarray, spacing_xyz) -> np.ndarray:
    """Physical distance (mm) from each `points` voxel to the nearest `target` voxel centre.

    Outside the target, Maurer's signed map is the exact distance to the nearest target voxel
    (that voxel always lies on the target's contour); inside it is <= 0, and the distance is 0.
    """
    distance_map = sitk.SignedMaurerDistanceMap(_as_image(target, spacing_xyz), insideIsPositive=False,
                                                squaredDistance=False, useImageSpacing=True)
    return np.maximum(sitk.GetArrayViewFromImage(distance_map)[points], 0.0)


def hd95(prediction: np.ndarray, reference: np.ndarray, spacing_xyz) -> float:
    """95th-percentile Hausdorff distance (mm) between the in-plane boundaries; NaN if undefined.

    The distance maps are computed only inside the box around both boundaries: every nearest
    boundary voxel lies in it, so the distances are the same as on the whole grid.
    """
    prediction_edge, reference_edge = boundary(prediction), boundary(reference)
    if not prediction_edge.any() or not reference_edge.any():
        return math.nan
    box = bounding_box(prediction_edge | reference_edge)
    prediction_edge, reference_edge = prediction_edge[box], reference_edge[box]
    forward = _distance_to(reference_edge, prediction_edge, spacing_xyz)
    backward = _distance_to(prediction_edge, reference_edge, spacing_xyz)
    return float(max(np.percentile(forward, 95), np.percentile(backward, 95)))


def avd(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Absolute volume difference in percent of the reference volume; NaN if the reference is empty."""
    reference_count = int(reference.sum())
    if reference_count == 0:
        return math.nan
    return abs(reference_count - int(prediction.sum())) / reference_count * 100.0


def _hit_count(labels: np.ndarray, other: np.ndarray) -> int:
    """How many distinct components of `labels` overlap the boolean mask `other`."""
    hit = np.unique(labels[other])
    return int((hit > 0).sum())


def lesion_detection(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Lesion-wise recall, precision and F1 with the challenge's edge cases, plus the counts."""
    reference_labels, n_reference = components(reference)
    prediction_labels, n_prediction = components(prediction)
    detected = _hit_count(reference_labels, prediction)
    true_detections = _hit_count(prediction_labels, reference)
    recall = detected / n_reference if n_reference else 1.0
    precision = true_detections / n_prediction if n_prediction else 1.0
    f1 = 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"recall": recall, "precision": precision, "f1": f1,
            "n_ref_lesions": n_reference, "n_pred_lesions": n_prediction,
            "n_detected": detected}


def _check_reference_values(reference: np.ndarray, source: str | Path | None) -> None:
    valid = np.isin(reference, REFERENCE_VALUES)
    if not valid.all():
        shown = ", ".join(f"{v:g}" for v in np.unique(reference[~valid])[:5].tolist())
        raise InputError(source, f"reference label must hold 0, 1 (WMH) and optionally 2 (other "
                                 f"pathology); found values {shown}")


def evaluate_arrays(prediction: np.ndarray, reference: np.ndarray, spacing_xyz,
                    reference_name: str | Path | None = None) -> dict[str, float]:
    """All challenge metrics for (z, y, x) arrays on the reference grid with spacing (x, y, z) mm.

    Besides the five metrics the result holds precision, lesion counts and the volumes (mL) of
    the reference, the prediction and their overlap, so that pooled Dice can be summed later.
    """
    if prediction.shape != reference.shape:
        raise InputError(reference_name, f"prediction shape {prediction.shape} differs from the "
                                         f"reference shape {reference.shape} (z, y, x)")
    if prediction.ndim != 3 or len(spacing_xyz) != 3:
        raise InputError(reference_name, f"metrics need 3D volumes, got shape {prediction.shape}")
    _check_reference_values(reference, reference_name)
    wmh = reference == 1
    predicted = binarize_prediction(prediction) & (reference != 2)
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    result = {"dsc": dice(predicted, wmh), "hd95": hd95(predicted, wmh, spacing_xyz),
              "avd": avd(predicted, wmh)}
    result.update(lesion_detection(predicted, wmh))
    result.update({"ref_ml": int(wmh.sum()) * voxel_ml, "pred_ml": int(predicted.sum()) * voxel_ml,
                   "overlap_ml": int((predicted & wmh).sum()) * voxel_ml})
    return result


def evaluate_images(prediction: sitk.Image, reference: sitk.Image,
                    prediction_name: str | Path | None = "prediction",
                    reference_name: str | Path | None = "reference") -> dict[str, float]:
    """Metrics for two images; the prediction is read on the reference grid (same size needed)."""
    if prediction.GetSize() != reference.GetSize():
        raise InputError(prediction_name, f"prediction size {prediction.GetSize()} differs from the "
                                          f"reference size {reference.GetSize()}; the prediction must "
                                          f"be on the reference (FLAIR) grid")
    return evaluate_arrays(sitk.GetArrayFromImage(prediction), sitk.GetArrayFromImage(reference),
                           reference.GetSpacing(), reference_name)


def evaluate_files(prediction_path: str | Path, reference_path: str | Path) -> dict[str, float]:
    """Metrics for a prediction file against a reference label file (any SimpleITK format)."""
    reference = read_image(reference_path, "reference label")
    prediction = read_image(prediction_path, "prediction")
    return evaluate_images(prediction, reference, prediction_path, reference_path)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _finite(values: Iterable) -> list[float]:
    return [float(v) for v in values if _is_number(v) and math.isfinite(float(v))]


def summarize(rows: Iterable[Mapping]) -> dict[str, dict[str, float]]:
    """Per numeric column: mean, median and count of the finite (non-NaN) values.

    NaN marks an undefined metric (see the module's edge-case table), so it is skipped rather
    than counted as 0 or infinity; the count shows how many cases each summary rests on. When the
    volumes are present, a pooled Dice over all cases is added as `pooled_dsc`.
    """
    rows = list(rows)
    columns = dict.fromkeys(key for row in rows for key, value in row.items() if _is_number(value))
    summary = {}
    for key in columns:
        values = _finite(row.get(key) for row in rows)
        summary[key] = {"mean": float(np.mean(values)) if values else math.nan,
                        "median": float(np.median(values)) if values else math.nan,
                        "count": len(values)}
    if rows and all(k in rows[0] for k in ("ref_ml", "pred_ml", "overlap_ml")):
        total = sum(row["ref_ml"] + row["pred_ml"] for row in rows)
        pooled = 2.0 * sum(row["overlap_ml"] for row in rows) / total if total else 1.0
        summary["pooled_dsc"] = {"mean": pooled, "median": pooled, "count": len(rows)}
    return summary
