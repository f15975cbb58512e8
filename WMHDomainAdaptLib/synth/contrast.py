"""Image contrast: the FLAIR signal equation with partial-volume mixing, and the T1 remix.

FLAIR intensities are computed from tissue relaxation times, not painted: the domains then
differ the way real protocols differ (which tissue is nulled, how much T2 weighting), and the
per-subject draw of relaxation times gives natural subject-to-subject contrast variation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy
from .domains import FlairSequence, T1Protocol
from .lesions import Lesions

# Approximate 3 T relaxation (PD, T1 ms, T2 ms) ranges; one value per subject is drawn from each.
RELAXATION_3T = {
    "wm": ((0.69, 0.69), (850.0, 1000.0), (70.0, 80.0)),
    "gm": ((0.80, 0.80), (1350.0, 1600.0), (95.0, 110.0)),
    "csf": ((1.0, 1.0), (3800.0, 4400.0), (1500.0, 2000.0)),
    "wmh": ((0.75, 0.85), (1200.0, 1500.0), (140.0, 250.0)),
}
JITTER = 0.05  # each value is further jittered by +-5 % per subject
TEMPLATE_T1 = {"wm": 222 / 255, "gm": 166 / 255, "csf": 69 / 255}  # the template's own contrast


@dataclass(frozen=True)
class Relaxation:
    pd: float
    t1: float
    t2: float


def sample_relaxation(rng: np.random.Generator) -> dict[str, Relaxation]:
    """One subject's tissue parameters: uniform in RELAXATION_3T, then +-5 % jitter."""
    tissues = {}
    for name, ranges in RELAXATION_3T.items():
        values = [rng.uniform(*r) * rng.uniform(1 - JITTER, 1 + JITTER) for r in ranges]
        tissues[name] = Relaxation(*(float(v) for v in values))
    return tissues


def ir_signal(pd, t1, t2, sequence: FlairSequence):
    """Magnitude IR-TSE signal PD |1 - 2 e^(-TI/T1) + e^(-(TR - readout)/T1)| e^(-TE/T2)."""
    recovery = sequence.tr_ms - sequence.readout_ms
    longitudinal = 1 - 2 * np.exp(-sequence.ti_ms / t1) + np.exp(-recovery / t1)
    return pd * np.abs(longitudinal) * np.exp(-sequence.te_ms / t2)


def inflow_signal(csf: Relaxation, sequence: FlairSequence) -> float:
    """CSF that flowed in after the inversion pulse is not nulled: it has recovered fully."""
    return float(csf.pd * (1 - np.exp(-(sequence.tr_ms - sequence.readout_ms) / csf.t1))
                 * np.exp(-sequence.te_ms / csf.t2))


def analytic_ratios(sequence: FlairSequence, tissues: dict[str, Relaxation] | None = None) -> dict:
    """GM/WM, CSF/WM and WMH/WM of pure tissues (mid-range values when `tissues` is None)."""
    if tissues is None:
        tissues = {name: Relaxation(*(sum(r) / 2 for r in ranges))
                   for name, ranges in RELAXATION_3T.items()}
    signal = {name: ir_signal(t.pd, t.t1, t.t2, sequence) for name, t in tissues.items()}
    return {f"{name}/wm": float(signal[name] / signal["wm"]) for name in ("gm", "csf", "wmh")}


def flair_signal(anatomy: Anatomy, lesions: Lesions, tissues: dict[str, Relaxation],
                 sequence: FlairSequence, csf_inflow: np.ndarray | None = None) -> np.ndarray:
    """S = sum_t f_t S_t over GM, WM (1 - f_L), CSF and the lesion WM f_L, on the 1 mm grid.

    The WM T2 rises in the dirty-appearing shell around lesions; each lesion has its own T2;
    `csf_inflow` (0-1) is the fraction of CSF that escaped the inversion (flow artefacts)."""
    wm, gm, csf, les = (tissues[k] for k in ("wm", "gm", "csf", "wmh"))
    wm_t2 = wm.t2 * (1 + lesions.dawm_gain * lesions.dawm)
    wm_signal = ir_signal(wm.pd, wm.t1, wm_t2, sequence)
    lesion_signal = ir_signal(les.pd, les.t1, les.t2 * lesions.t2_factor, sequence)
    csf_signal = ir_signal(csf.pd, csf.t1, csf.t2, sequence)
    if csf_inflow is not None:
        csf_signal = csf_signal + csf_inflow * (inflow_signal(csf, sequence) - csf_signal)
    signal = (anatomy.gm * ir_signal(gm.pd, gm.t1, gm.t2, sequence)
              + anatomy.wm * (1 - lesions.fraction) * wm_signal
              + anatomy.csf * csf_signal
              + anatomy.wm * lesions.fraction * lesion_signal)
    return signal.astype(np.float32)


def t1_signal(anatomy: Anatomy, lesions: Lesions, protocol: T1Protocol) -> np.ndarray:
    """The template T1 with its tissue means moved to the protocol's (its fine detail kept),
    lesions darkened by their own 0-15 % (the darkening is 0 for small lesions)."""
    image = anatomy.t1.copy()
    for name, fraction in (("wm", anatomy.wm), ("gm", anatomy.gm), ("csf", anatomy.csf)):
        delta = getattr(protocol, name) - TEMPLATE_T1[name]
        if delta:
            image += fraction * np.float32(delta)
    image *= 1 - lesions.t1_darkening
    return np.clip(image, 0, None).astype(np.float32)
