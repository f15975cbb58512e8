"""Whole-volume segmentation: the fully convolutional network applied slice by slice.

Slices are cropped in-plane to the brain's bounding box (plus a margin) before the network sees
them, which halves the work on a typical head, and the probabilities are pasted back on the full
FLAIR grid, so outputs keep the FLAIR's exact geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from .cases import PreparedCase
from .decision import decide
from .devices import resolve_device
from .errors import InputError
from .modelfile import LoadedModel
from .network_input import InputSpec, context_offsets
from .preprocess import preprocess
from .progress import CancelToken, ProgressCallback, ProgressTracker

CROP_MARGIN = 8  # voxels of context kept around the brain in-plane


@dataclass
class Segmentation:
    probability: sitk.Image  # float32 on the FLAIR grid
    mask: sitk.Image         # uint8 0/1 on the FLAIR grid
    lesion_volume_ml: float
    lesion_count: int
    threshold: float         # the probability threshold the mask was cut at


def brain_box(mask: np.ndarray, margin: int = CROP_MARGIN) -> tuple[slice, slice, slice]:
    """Slices (z, y, x) covering the mask, with an in-plane margin."""
    if not mask.any():
        raise InputError("brain mask", "brain mask is empty")
    bounds = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        pad = 0 if axis == 0 else margin
        bounds.append(slice(max(present[0] - pad, 0), min(present[-1] + 1 + pad, mask.shape[axis])))
    return tuple(bounds)


@torch.no_grad()
def predict_probability(network: torch.nn.Module, spec: InputSpec, case: PreparedCase, device: torch.device,
                        batch_slices: int = 8, progress: ProgressCallback | None = None,
                        cancel: CancelToken | None = None) -> np.ndarray:
    """WMH probability (z, y, x) of a prepared case, fed as `spec` says; 0 outside the brain."""
    was_training = network.training
    network.eval()
    z_range, y_range, x_range = brain_box(case.brain_mask)
    probability = np.zeros(case.brain_mask.shape, np.float32)
    starts = range(z_range.start, z_range.stop, batch_slices)
    tracker = ProgressTracker("segment", len(starts), progress, cancel)
    for step, start in enumerate(starts):
        zs = np.arange(start, min(start + batch_slices, z_range.stop))
        batch = torch.from_numpy(case.network_input(spec, zs, y_range, x_range)).to(device)
        logits = network(batch)[:, 0]
        probability[start:zs[-1] + 1, y_range, x_range] = torch.sigmoid(logits).float().cpu().numpy()
        tracker.update(step + 1)
    network.train(was_training)
    return np.where(case.brain_mask, probability, 0.0).astype(np.float32)


def check_channels(model: LoadedModel, case: PreparedCase) -> None:
    """The case, stacked as the model reads it, gives the input channels its file records."""
    expected = model.metadata["input_channels"]
    channels = len(case.image) * len(context_offsets(model.input_spec.context_slices))
    if channels != len(expected):
        raise InputError(case.case_id, f"model expects {len(expected)} input channels "
                                       f"({', '.join(expected)}), the input has {channels}")


def warn_if_far_spacing(model: LoadedModel, reference: sitk.Image) -> str | None:
    """A warning when the FLAIR's spacing is far (over 30%) from the training data's.

    In-plane always; along z too for a model that reads neighbouring slices, whose distance it
    learned.
    """
    trained = model.metadata.get("training", {}).get("flair_spacing")
    if not trained:
        return None
    axes = 3 if model.preprocess_config.context_slices else 2
    ratio = np.asarray(reference.GetSpacing()[:axes]) / np.asarray(trained[:axes])
    if np.any(ratio > 1.3) or np.any(ratio < 0.77):
        which = "spacing" if axes == 3 else "in-plane spacing"
        return (f"warning: FLAIR {which} {reference.GetSpacing()[:axes]} is far from the model's "
                f"training spacing {tuple(trained[:axes])}; results may be poor")
    return None


def segment_prepared(model: LoadedModel, case: PreparedCase, device: torch.device,
                     min_lesion_mm3: float = 0.0, progress: ProgressCallback | None = None,
                     cancel: CancelToken | None = None) -> Segmentation:
    check_channels(model, case)
    probability = predict_probability(model.network, model.input_spec, case, device, progress=progress,
                                      cancel=cancel)
    decision = decide(probability, model.flair_of(case.image), model.cut, case.spacing_xyz, min_lesion_mm3)
    voxel_ml = float(np.prod(case.spacing_xyz)) / 1000.0
    return Segmentation(case.output_image(probability), case.output_image(decision.mask.astype(np.uint8)),
                        float(decision.mask.sum()) * voxel_ml, decision.lesion_count, decision.threshold)


def segment(model: LoadedModel, t1: sitk.Image, flair: sitk.Image, brain_mask: np.ndarray | None = None,
            device: str = "auto", min_lesion_mm3: float = 0.0, progress: ProgressCallback | None = None,
            cancel: CancelToken | None = None, register: str = "auto",
            mask_method: str = "auto") -> Segmentation:
    """Segment one T1 + FLAIR pair, repeating the preprocessing recorded in the model (the T1
    registered onto the FLAIR where their headers' alignment is off, unless `register` says;
    without `brain_mask`, one made as `mask_method` says: auto, threshold or deepbet)."""
    torch_device = resolve_device(device)
    model.network.to(torch_device)
    prepared = preprocess(t1, flair, model.preprocess_config, brain_mask=brain_mask, register=register,
                          mask_method=mask_method)
    case = PreparedCase.of("input", prepared)
    return segment_prepared(model, case, torch_device, min_lesion_mm3, progress, cancel)
