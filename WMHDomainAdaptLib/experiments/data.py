"""Each case preprocessed once per experiment, kept as .npz in the output folder.

Preprocessing (N4 above all) is the slow part of a run on a CPU, and a resumed experiment should
not pay it again. A cache entry records what it was made from (preprocessing options, file paths,
sizes and modification times) and is recomputed when any of that changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..cases import PreparedCase, prepare_case
from ..dataset import Case, load_cases
from ..io import atomic_write
from ..preprocess import PreprocessConfig
from ..progress import CancelToken, ProgressCallback, ProgressTracker

# Bumped when what an entry stores changes: 2 = the slices' own channels only (the neighbouring
# slices are stacked when the network is fed), where 1 stored them stacked; 3 = N4 by `n4.py`
# instead of ITK's filter (z-scores within about 0.01 of 2's at any voxel); 4 = scans not stored
# axially are stored axially (orientation.py), axial ones as in 3.
CACHE_LAYOUT = 4


def case_fingerprint(case: Case, config: PreprocessConfig) -> str:
    files = [p for p in (case.t1, case.flair, case.label, case.mask) if p is not None]
    stamp = [(str(Path(p).resolve()), Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in files]
    text = json.dumps({"preprocess": config.to_dict(), "files": stamp, "id": case.case_id,
                       "layout": CACHE_LAYOUT})
    return hashlib.sha256(text.encode()).hexdigest()


def cache_path(folder: Path, case_id: str) -> Path:
    """A safe file name per case id (ids may hold any characters; the hash keeps them distinct)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", case_id)[:60]
    return folder / f"{safe}-{hashlib.sha1(case_id.encode()).hexdigest()[:8]}.npz"


def geometry_image(size, spacing, origin, direction) -> sitk.Image:
    """An empty image carrying the FLAIR's geometry: all that evaluation needs of the reference."""
    image = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection([float(d) for d in direction])
    return image


def save_prepared(path: Path, case: PreparedCase, fingerprint: str) -> None:
    reference = case.reference
    arrays = {"image": case.image, "brain_mask": case.brain_mask, "fingerprint": np.array(fingerprint),
              "size": np.array(reference.GetSize()), "spacing": np.array(reference.GetSpacing()),
              "origin": np.array(reference.GetOrigin()), "direction": np.array(reference.GetDirection())}
    if case.label is not None:
        arrays["label"] = case.label

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    atomic_write(path, write)


def load_prepared(path: Path, case_id: str, fingerprint: str) -> PreparedCase | None:
    """The cached case, or None when absent, unreadable or made from other inputs."""
    try:
        with np.load(path) as stored:
            if str(stored["fingerprint"]) != fingerprint:
                return None
            reference = geometry_image(stored["size"], stored["spacing"], stored["origin"],
                                       stored["direction"])
            label = stored["label"] if "label" in stored.files else None
            return PreparedCase(case_id, stored["image"], stored["brain_mask"], label, reference)
    except (OSError, ValueError, KeyError):
        return None


def prepare_cached(cases: list[Case], config: PreprocessConfig, folder: Path, task: str = "preprocess",
                   progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> list[PreparedCase]:
    """Labelled cases ready for the network, from the cache where possible."""
    tracker = ProgressTracker(task, len(cases), progress, cancel)
    prepared = []
    for index, case in enumerate(cases):
        fingerprint = case_fingerprint(case, config)
        path = cache_path(folder, case.case_id)
        entry = load_prepared(path, case.case_id, fingerprint) if path.is_file() else None
        if entry is None:
            entry = prepare_case(case, config, need_label=True)
            save_prepared(path, entry, fingerprint)
        prepared.append(entry)
        tracker.update(index + 1, case.case_id)
    return prepared


def resolve_dataset(root: Path, location: str) -> Path:
    path = Path(location).expanduser()
    return path if path.is_absolute() else root / path


def load_prepared_set(root: Path, location: str, config: PreprocessConfig, cache_root: Path, name: str,
                      progress: ProgressCallback | None = None,
                      cancel: CancelToken | None = None, limit: int | None = None) -> list[PreparedCase]:
    """A named dataset (manifest or folder under `root`), preprocessed and cached under its name.

    `limit` keeps the first cases of the manifest only (a CPU budget for test sets)."""
    cases = load_cases(resolve_dataset(root, location))[:limit]
    return prepare_cached(cases, config, cache_root / name, f"prep {name}", progress, cancel)
