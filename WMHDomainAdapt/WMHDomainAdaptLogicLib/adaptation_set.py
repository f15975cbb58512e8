"""The adaptation set: corrected scans stored on disk with a manifest, ready for `wmhda adapt`.

Each case is a folder `<set>/<case_id>/` with `t1.nrrd`, `flair.nrrd` and `wmh.nrrd` (the corrected
segmentation as a 0/1 labelmap on the FLAIR grid); `<set>/manifest.csv` lists them in the library's
manifest format. The set lives on disk, not in the scene, so closing the scene or restarting Slicer
loses nothing, and the worker process reads exactly what the user stored.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from WMHDomainAdaptLib.dataset import Case, read_manifest, write_manifest
from WMHDomainAdaptLib.io import image_like, write_image
from WMHDomainAdaptLib.preprocess import MIN_OVERLAP, overlap_fraction

from .segmentation import segment_to_flair_labelmap
from .volumes import volume_to_image

MANIFEST_NAME = "manifest.csv"


def safe_case_id(name: str) -> str:
    """A file-system-safe case id from a node name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return cleaned or "case"


def check_overlap(t1: sitk.Image, flair: sitk.Image) -> None:
    if overlap_fraction(t1, flair) < MIN_OVERLAP:
        raise ValueError("T1 and FLAIR do not overlap in world space (less than half of the FLAIR "
                         "lies inside the T1); check that both belong to the same scan session")


class AdaptationSet:
    """Cases on disk plus the manifest that `wmhda adapt --cases` reads."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST_NAME

    def cases(self) -> list[Case]:
        return read_manifest(self.manifest) if self.manifest.is_file() else []

    def __len__(self) -> int:
        return len(self.cases())

    def unique_id(self, name: str) -> str:
        base = safe_case_id(name)
        taken = {case.case_id for case in self.cases()} | {p.name for p in self.folder.glob("*")}
        candidate, number = base, 2
        while candidate in taken:
            candidate, number = f"{base}_{number}", number + 1
        return candidate

    def add(self, t1: sitk.Image, flair: sitk.Image, label: np.ndarray, name: str) -> Case:
        """Store one corrected case; refuses an empty label and non-overlapping T1/FLAIR."""
        label = (np.asarray(label) > 0).astype(np.uint8)
        if not label.any():
            raise ValueError("the corrected segmentation is empty; paint the lesions (or keep the "
                             "automatic result) before adding the case")
        check_overlap(t1, flair)
        case_id = self.unique_id(name)
        case_folder = self.folder / case_id
        case = Case(case_id, case_folder / "t1.nrrd", case_folder / "flair.nrrd", case_folder / "wmh.nrrd")
        write_image(t1, case.t1)
        write_image(flair, case.flair)
        write_image(image_like(label, flair), case.label)
        write_manifest([*self.cases(), case], self.manifest)
        return case

    def remove(self, case_id: str) -> None:
        cases = self.cases()
        kept = [case for case in cases if case.case_id != case_id]
        if len(kept) == len(cases):
            raise ValueError(f"case '{case_id}' is not in the adaptation set")
        write_manifest(kept, self.manifest)
        shutil.rmtree(self.folder / case_id, ignore_errors=True)

    def clear(self) -> None:
        for case in self.cases():
            shutil.rmtree(self.folder / case.case_id, ignore_errors=True)
        self.manifest.unlink(missing_ok=True)


def add_case_from_nodes(scene, adaptation_set: AdaptationSet, t1_node, flair_node, segmentation_node,
                        segment_id: str | None = None, name: str | None = None) -> Case:
    """Store the T1, the FLAIR and the corrected segment (exported onto the FLAIR grid)."""
    if t1_node is None or flair_node is None:
        raise ValueError("select both a T1 and a FLAIR volume")
    if segmentation_node is None:
        raise ValueError("select the corrected segmentation")
    label = segment_to_flair_labelmap(scene, segmentation_node, flair_node, segment_id)
    return adaptation_set.add(volume_to_image(t1_node), volume_to_image(flair_node), label,
                              name or flair_node.GetName())
