"""One synthetic subject end to end: anatomy, lesions, contrast, acquisition, images.

Randomness comes in two streams: the subject stream (anatomy and lesions) is seeded by the seed
alone, the scanner stream (relaxation draw, noise, bias, artefacts) by the seed and the domain.
The same seed in two domains is therefore the same brain with the same lesions scanned with two
protocols, which makes paired comparisons possible; different seeds are different subjects.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..dataset import Case
from ..errors import InputError
from ..io import atomic_write, write_image
from .acquisition import acquire_flair, acquire_t1, csf_flow_map, flair_operators
from .anatomy import Anatomy, make_anatomy
from .contrast import flair_signal, ir_signal, sample_relaxation, t1_signal
from .domains import DOMAIN_CODES, Domain, get_domain
from .fields import apply_separable
from .lesions import Lesions, load_fraction, make_lesions, sample_load
from .template import FIELDS_OF_VIEW, FieldOfView, Grid, Template, grid_for, load_template

FORBIDDEN_ID_PARTS = ("t1", "flair", "wmh", "label", "mask")  # dataset.py finds files by these
MAX_ATROPHY_MM = 4.0


@dataclass
class SyntheticSubject:
    """A subject's images (T1 1 mm, FLAIR and its WMH label on the domain grid) and provenance.

    `maps` (only with keep_maps=True) holds tissue fractions on the FLAIR grid ("wm", "gm",
    "ventricles") and, at 1 mm, the truth, WM, GM and the lesions' T1 darkening ("truth_1mm",
    "wm_1mm", "gm_1mm", "t1_darkening_1mm"), for measuring contrasts."""

    subject_id: str
    t1: sitk.Image
    flair: sitk.Image
    label: sitk.Image
    info: dict
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0  # generation time (kept out of `info` so written files are reproducible)


def resolve_fov(fov: str | FieldOfView) -> FieldOfView:
    if isinstance(fov, FieldOfView):
        return fov
    if fov not in FIELDS_OF_VIEW:
        raise InputError("--fov", f"unknown field of view {fov!r}; choose one of "
                                  f"{', '.join(FIELDS_OF_VIEW)}")
    return FIELDS_OF_VIEW[fov]


def check_subject_id(subject_id: str) -> str:
    """Ids become folder and file names, and dataset.py finds roles by name parts."""
    if not subject_id or any(c in subject_id for c in '/\\:*?"<>| ') or subject_id.startswith("."):
        raise InputError("subject id", f"{subject_id!r} is not a usable file name")
    if any(part in subject_id.lower() for part in FORBIDDEN_ID_PARTS):
        raise InputError("subject id", f"{subject_id!r} contains one of "
                                       f"{', '.join(FORBIDDEN_ID_PARTS)}, which name image roles")
    return subject_id


def _image(array: np.ndarray, spacing: tuple[float, float, float], template: Template,
           grid: Grid) -> sitk.Image:
    """An image whose field of view starts where the 1 mm grid's does (same world box)."""
    image = sitk.GetImageFromArray(array)
    direction = np.array(grid.direction_lps(template)).reshape(3, 3)
    shift = direction @ ((np.array(spacing) - 1.0) / 2)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(direction.ravel()))
    image.SetOrigin(tuple(float(v) for v in np.array(grid.origin_lps(template)) + shift))
    return image


def _axes_mm(template: Template, grid: Grid, spacing_zyx: tuple[float, float, float]):
    """Voxel centres along z, y, x in mm relative to the brain's centre (for the bias field)."""
    axes = []
    for n, start, spacing, c in zip(grid.shape, grid.start, spacing_zyx, template.brain_centre):
        count = int(np.floor(n / spacing + 1e-6))
        axes.append(start - 0.5 + spacing / 2 + np.arange(count) * spacing - c)
    return tuple(axes)


def _wm_share(template: Template, grid: Grid) -> float:
    if grid.shape == template.shape:
        return 1.0
    box = tuple(slice(s, s + n) for s, n in zip(grid.start, grid.shape))
    return float(template.wm[box].sum(dtype=np.float64) / template.wm.sum(dtype=np.float64))


def _make_brain(template: Template, grid: Grid, seed: int) -> tuple[Anatomy, Lesions]:
    """The subject stream: lesion load, anatomy (atrophy grows with the load), lesions."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    load_ml = sample_load(rng, _wm_share(template, grid))
    atrophy = MAX_ATROPHY_MM * min(1.0, 0.7 * load_fraction(load_ml) + 0.3 * rng.random())
    anatomy = make_anatomy(template, grid, rng, atrophy)
    return anatomy, make_lesions(anatomy, rng, load_ml)


def _scan(anatomy: Anatomy, lesions: Lesions, domain: Domain, template: Template, grid: Grid,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """The scanner stream: int16 FLAIR and T1 arrays, the slice thickness, provenance."""
    tissues = sample_relaxation(rng)
    thickness = float(rng.uniform(*domain.slice_thickness))
    count = int(rng.integers(domain.csf_flow_blobs[0], domain.csf_flow_blobs[1] + 1))
    inflow = csf_flow_map(anatomy, count, rng) if count else None
    signal = flair_signal(anatomy, lesions, tissues, domain.sequence, inflow)
    wm = tissues["wm"]
    wm_level = float(ir_signal(wm.pd, wm.t1, wm.t2, domain.sequence))
    flair, flair_info = acquire_flair(signal, wm_level, domain, thickness,
                                      _axes_mm(template, grid, domain.flair_spacing[::-1]), rng)
    del signal
    t1, t1_info = acquire_t1(t1_signal(anatomy, lesions, domain.t1), domain.t1,
                             _axes_mm(template, grid, (1.0, 1.0, 1.0)), rng)
    relaxation = {k: {"pd": round(v.pd, 4), "t1_ms": round(v.t1, 1), "t2_ms": round(v.t2, 1)}
                  for k, v in tissues.items()}
    info = {**flair_info, **t1_info, "csf_flow_blobs": count, "relaxation": relaxation}
    return flair, t1, thickness, info


def _measurement_maps(anatomy: Anatomy, lesions: Lesions, operators) -> dict[str, np.ndarray]:
    return {"wm": _project(anatomy.wm * (1 - lesions.fraction), operators),
            "gm": _project(anatomy.gm, operators),
            "ventricles": _project(anatomy.ventricles, operators),
            "truth_1mm": lesions.truth, "wm_1mm": anatomy.wm, "gm_1mm": anatomy.gm,
            "t1_darkening_1mm": lesions.t1_darkening}


def generate_subject(domain: str | Domain, seed: int, subject_id: str = "sub000",
                     fov: str | FieldOfView = "full", keep_maps: bool = False) -> SyntheticSubject:
    """Make one subject scanned with `domain`'s protocol; same arguments -> identical images.

    The first call in a process also loads the template (about 5 s)."""
    started = time.monotonic()
    domain = get_domain(domain) if isinstance(domain, str) else domain
    subject_id = check_subject_id(subject_id)
    if seed < 0:
        raise InputError("--seed", f"seed must be >= 0, got {seed}")
    fov = resolve_fov(fov)
    template = load_template()
    grid = grid_for(template, fov)
    anatomy, lesions = _make_brain(template, grid, seed)
    scanner_rng = np.random.default_rng(np.random.SeedSequence([seed, 1, DOMAIN_CODES[domain.name]]))
    flair, t1, thickness, scan_info = _scan(anatomy, lesions, domain, template, grid, scanner_rng)
    operators = flair_operators(grid.shape, domain, thickness, psf=False)
    label = (_project(lesions.truth, operators) >= 0.5).astype(np.uint8)
    info = {"id": subject_id, "domain": domain.name, "seed": int(seed), "fov": fov.name,
            **anatomy.info, **lesions.info, **scan_info,
            "label_ml": float(label.sum()) * float(np.prod(domain.flair_spacing)) / 1000}
    return SyntheticSubject(
        subject_id=subject_id,
        t1=_image(t1, (1.0, 1.0, 1.0), template, grid),
        flair=_image(flair, domain.flair_spacing, template, grid),
        label=_image(label, domain.flair_spacing, template, grid),
        info=info, maps=_measurement_maps(anatomy, lesions, operators) if keep_maps else {},
        seconds=time.monotonic() - started)


def _project(volume: np.ndarray, operators) -> np.ndarray:
    return apply_separable(np.asarray(volume, dtype=np.float32), operators)


def subject_paths(out_dir: str | Path, subject_id: str) -> dict[str, Path]:
    folder = Path(out_dir) / subject_id
    return {role: folder / f"{subject_id}_{role}.nii.gz" for role in ("t1", "flair", "wmh")} | {
        "info": folder / f"{subject_id}_info.json"}


def write_subject(subject: SyntheticSubject, out_dir: str | Path) -> Case:
    """Write `<id>/<id>_t1.nii.gz`, `_flair.nii.gz`, `_wmh.nii.gz` and `_info.json` atomically."""
    paths = subject_paths(out_dir, subject.subject_id)
    write_image(subject.t1, paths["t1"])
    write_image(subject.flair, paths["flair"])
    write_image(subject.label, paths["wmh"])
    text = json.dumps(subject.info, indent=1, sort_keys=True)
    atomic_write(paths["info"], lambda tmp: tmp.write_text(text))
    return Case(subject.subject_id, paths["t1"], paths["flair"], paths["wmh"])
