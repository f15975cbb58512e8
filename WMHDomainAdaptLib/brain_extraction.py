"""Brain masks for scans with skull and scalp, by deepbet's networks (PyPI `deepbet`, MIT).

Our own mask (`preprocess.compute_brain_mask`: threshold, largest component) assumes a
skull-stripped T1; on a whole head it keeps scalp and skull, and bright scalp fat on FLAIR is what
a WMH model calls lesion. deepbet (Fisch et al. 2024) runs two small TorchScript networks on the
T1, with the torch we already have, and ships their weights in its wheel, so it works offline.
We call its library (not its command line or GUI, whose packages we do not install), pin its
version and check both weight files' SHA-256 before `torch.jit.load` runs them: what runs is what
we tested. The mask is computed at the T1's own resolution and carried to the FLAIR grid through
the same world-space transform as the T1 (`registration.T1Placement`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .modelheader import file_sha256
from .orientation import Reorientation

DEEPBET_VERSION = "1.0.2"
WEIGHTS_SHA256 = {"model.pt": "de8ee7c69654d0dd3935dc4a5d84571d8ecf4637a6bfc01df399c4c2bc86e0fd",
                  "bbox_model.pt": "39a7b2b5f799faa1391ea97bfcdc0b9299f20d84f2316a4ff8918dc4685e40aa"}
MASK_METHODS = ("auto", "threshold", "deepbet")
THRESHOLD = 0.5  # deepbet's own default on its networks' brain probability
_EXTRACTOR = None  # loaded once per process


def load_extractor():
    """deepbet's `BrainExtraction` on the CPU, after checking its version and weight files."""
    global _EXTRACTOR
    if _EXTRACTOR is not None:
        return _EXTRACTOR
    try:
        from importlib.metadata import version

        from deepbet import BrainExtraction
        from deepbet.utils import DATA_PATH
    except ImportError as error:
        raise InputError("--brain-mask deepbet", f"needs deepbet {DEEPBET_VERSION} ({error}): pip install "
                                                 f"'wmhdomainadapt[heads]' && pip install --no-deps "
                                                 f"deepbet=={DEEPBET_VERSION}") from None
    installed = version("deepbet")
    if installed != DEEPBET_VERSION:
        raise InputError("--brain-mask deepbet", f"tested with deepbet {DEEPBET_VERSION}, found {installed}: "
                                                 f"pip install deepbet=={DEEPBET_VERSION} --no-deps")
    paths = {name: Path(DATA_PATH) / "models" / name for name in WEIGHTS_SHA256}
    for name, path in paths.items():
        if not path.is_file() or file_sha256(path) != WEIGHTS_SHA256[name]:
            raise InputError(path, "deepbet's network file is missing or not the one tested (its "
                                   "SHA-256 differs); reinstall deepbet")
    _EXTRACTOR = BrainExtraction(no_gpu=True, model_path=str(paths["model.pt"]),
                                 bbox_model_path=str(paths["bbox_model.pt"]))
    return _EXTRACTOR


def _to_ras(axial: np.ndarray) -> np.ndarray:
    """An axially restored array, (z, y, x) stored RAS+ (`orientation.TRAINING_STORAGE`), as deepbet
    reads it: (x, y, z) along +R, +A, +S."""
    return np.ascontiguousarray(np.transpose(axial, (2, 1, 0)))


def _from_ras(array_ras: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(array_ras, (2, 1, 0)))


def deepbet_mask(t1: sitk.Image) -> sitk.Image:
    """The brain of a T1 (uint8 0/1 on the T1's grid), by deepbet's networks."""
    import torch

    extractor = load_extractor()
    orientation = Reorientation.of(t1)
    axial = sitk.GetArrayFromImage(orientation.axial_image(t1)).astype(np.float32)
    with torch.no_grad():
        probability = extractor.run_model(_to_ras(axial))
    brain = extractor.postprocess(probability > THRESHOLD)
    mask = orientation.to_input(_from_ras(brain.astype(np.uint8)))
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(t1)
    return image


def mask_on_flair_grid(mask_on_t1: sitk.Image, flair: sitk.Image, transform: sitk.Transform) -> np.ndarray:
    """A T1-grid mask carried to the FLAIR grid through the T1's transform, holes filled."""
    resampled = sitk.Resample(mask_on_t1, flair, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    closed = sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(resampled, [1, 1, 1]))
    return sitk.GetArrayFromImage(closed).astype(bool)
