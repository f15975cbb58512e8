"""Cases read and preprocessed once, held in memory as network-ready arrays.

Training, adaptation and experiments preprocess each scan once (N4 is the slow part) and reuse
the arrays; `PreparedCase` is that cache entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .dataset import Case
from .errors import InputError
from .io import image_like, read_image, read_label, read_mask
from .network_input import InputSpec
from .orientation import Reorientation
from .preprocess import PreprocessConfig, Preprocessed, preprocess
from .progress import CancelToken, ProgressCallback, ProgressTracker


@dataclass
class PreparedCase:
    case_id: str
    image: np.ndarray        # (channels, z, y, x) float32, normalized: the slices' own channels
    brain_mask: np.ndarray   # (z, y, x) bool
    label: np.ndarray | None  # (z, y, x) uint8 in {0, 1, 2}, or None
    reference: sitk.Image    # the FLAIR stored axially: the grid of the arrays above
    orientation: Reorientation = Reorientation()  # from the input FLAIR's storage to `reference`
    input_flair: sitk.Image | None = None  # the FLAIR as given, when not stored axially
    t1_placement: str = ""   # how the T1 was put on the FLAIR grid (headers, or registered: why)
    mask_method: str = "given"  # where the brain mask came from: given, threshold or deepbet

    @classmethod
    def of(cls, case_id: str, prepared: Preprocessed, label: np.ndarray | None = None) -> PreparedCase:
        """A preprocessed scan under its id, with its label (on the input FLAIR's grid) where
        training or evaluation needs one."""
        if label is not None:
            label = prepared.orientation.to_axial(label)
        placement = prepared.t1_placement.reason if prepared.t1_placement else ""
        return cls(case_id, prepared.image, prepared.brain_mask, label, prepared.reference,
                   prepared.orientation, prepared.input_flair, placement, prepared.mask_method)

    def output_image(self, array: np.ndarray) -> sitk.Image:
        """An array on the axial grid as an image on the input FLAIR's own grid, exact geometry."""
        if self.input_flair is None:
            return image_like(array, self.reference)
        return self.orientation.input_image(array, self.input_flair)

    @property
    def spacing_xyz(self) -> tuple[float, float, float]:
        return tuple(self.reference.GetSpacing())

    def network_input(self, spec: InputSpec, zs: np.ndarray, y_range: slice = slice(None),
                      x_range: slice = slice(None)) -> np.ndarray:
        """(len(zs), spec.size, y, x) float32 for the slices `zs`, cropped in-plane, as `spec` reads them."""
        return spec.stack(self.image[:, :, y_range, x_range], zs)


def prepare_case(case: Case, config: PreprocessConfig, need_label: bool = False,
                 register: str | None = None, mask_method: str = "auto") -> PreparedCase:
    """Read and preprocess one case; `register` (auto, never, always) overrides the model's choice,
    `mask_method` (auto, threshold, deepbet) says how to make a brain mask where none is given."""
    flair = read_image(case.flair, "FLAIR")
    t1 = read_image(case.t1, "T1")
    mask = read_mask(case.mask, flair) if case.mask else None
    label = read_label(case.label, flair, "WMH label") if case.label else None
    if need_label and label is None:
        raise InputError(case.flair, f"case '{case.case_id}' has no WMH label, but training needs one")
    prepared = preprocess(t1, flair, config, brain_mask=mask, t1_name=str(case.t1),
                          flair_name=str(case.flair), register=register, mask_method=mask_method)
    return PreparedCase.of(case.case_id, prepared, label)


def prepare_cases(cases: list[Case], config: PreprocessConfig, need_label: bool = False,
                  progress: ProgressCallback | None = None,
                  cancel: CancelToken | None = None) -> list[PreparedCase]:
    tracker = ProgressTracker("preprocess", len(cases), progress, cancel)
    prepared = []
    for index, case in enumerate(cases):
        prepared.append(prepare_case(case, config, need_label))
        tracker.update(index + 1, case.case_id)
    return prepared
