"""Measured contrasts of a synthetic subject: what the domains really look like.

Analytic ratios describe pure tissue; what a network sees is partial-volumed, noisy and biased.
These medians are taken on the generated images with the tissue fractions kept by
`generate_subject(..., keep_maps=True)`, and are what docs/benchmark.md reports.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from .acquisition import soft_knee
from .contrast import analytic_ratios
from .domains import Domain
from .generate import SyntheticSubject

PURE = {"wm": 0.9, "gm": 0.8, "ventricles": 0.95}  # tissue fraction of a "pure" FLAIR voxel
SMALL_LESION_MM3 = 30.0


def _median(image: np.ndarray, mask: np.ndarray) -> float:
    return float(np.median(image[mask])) if mask.any() else float("nan")


def flair_contrasts(subject: SyntheticSubject) -> dict[str, float]:
    """Median lesion/WM, GM/WM and CSF(ventricles)/WM of the FLAIR on its own grid."""
    if not subject.maps:
        raise ValueError("flair_contrasts needs a subject made with keep_maps=True")
    flair = sitk.GetArrayFromImage(subject.flair).astype(np.float32)
    label = sitk.GetArrayFromImage(subject.label) > 0
    wm = _median(flair, (subject.maps["wm"] > PURE["wm"]) & ~label)
    return {"lesion/wm": _median(flair, label) / wm,
            "gm/wm": _median(flair, (subject.maps["gm"] > PURE["gm"]) & ~label) / wm,
            "csf/wm": _median(flair, subject.maps["ventricles"] > PURE["ventricles"]) / wm}


def t1_contrasts(subject: SyntheticSubject) -> dict[str, float]:
    """T1 lesion contrast at 1 mm.

    "t1 lesion/wm" compares lesion voxels with pure WM on the image, so it also holds where
    lesions sit (periventricular WM is darker on the T1 with or without lesions); "t1 lesion
    darkening" and "t1 small lesion darkening" are the median of T1(with lesion) / T1(without)
    over all lesion voxels and over lesions under 30 mm3: the lesion's own T1 cue."""
    t1 = sitk.GetArrayFromImage(subject.t1).astype(np.float32)
    truth = subject.maps["truth_1mm"]
    wm = _median(t1, (subject.maps["wm_1mm"] > PURE["wm"]) & ~ndi.binary_dilation(truth, iterations=2))
    labels, _ = ndi.label(truth, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(labels.ravel())
    small = truth & (sizes[labels] < SMALL_LESION_MM3)
    own = 1.0 - subject.maps["t1_darkening_1mm"]
    return {"t1 lesion/wm": _median(t1, truth) / wm, "t1 lesion darkening": _median(own, truth),
            "t1 small lesion darkening": _median(own, small)}


def protocol_ratios(domain: Domain) -> dict[str, float]:
    """Pure-tissue ratios of mid-range tissues after the protocol's intensity response (at the
    middle of its knee range): what the protocol does before partial volume, blur and noise."""
    ratios = analytic_ratios(domain.sequence)
    if domain.response_knee is None:
        return ratios
    knee = float(np.mean(domain.response_knee))
    wm = float(soft_knee(np.float32(1.0), knee))
    return {name: float(soft_knee(np.float32(value), knee)) / wm for name, value in ratios.items()}
