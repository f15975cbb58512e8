"""Preprocessing as in the paper's pipeline: T1 onto the FLAIR grid, N4, brain mask, normalization.

The segmentation grid is the FLAIR's. Every choice lives in `PreprocessConfig`, which a model file
records, so inference repeats exactly how the training inputs were made.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields

import numpy as np
import SimpleITK as sitk

from . import n4
from .brain_extraction import MASK_METHODS, deepbet_mask, mask_on_flair_grid
from .errors import InputError, InputWarning
from .io import image_like
from .orientation import Reorientation
from .registration import T1Placement, place_t1

CHANNELS = ("t1", "flair")  # network input channel order
MIN_OVERLAP = 0.5  # share of the FLAIR inside the T1 below which a pair is refused
FULL_OVERLAP = 0.95  # ... and below which the user is warned
NO_CONTRAST = 1e-6  # a standard deviation under this fraction of the mean: the image is constant


@dataclass(frozen=True)
class PreprocessConfig:
    """How images become network input. Serializable with `to_dict` / `from_dict`."""

    register: bool = False          # always register T1->FLAIR rigidly (else as --register says)
    n4: bool = True                 # N4 bias-field correction of both images
    n4_shrink: int = 4              # N4 runs on a grid shrunk by this factor (speed)
    n4_iterations: int = 50         # per fitting level (4 levels); 20 left strong fields behind
    n4_convergence: float = 1e-4    # a level stops when the field changes less than this
    mask_threshold: float = 0.12    # computed mask: fraction of the T1's 99th percentile
    clip: float = 6.0               # z-scores are clipped to +-clip
    channels: tuple[str, ...] = CHANNELS
    context_slices: int = 0         # the channels of this many slices above and below are added

    def __post_init__(self) -> None:
        if self.context_slices < 0:
            raise InputError(None, f"context slices (--context-slices) must be 0 or more, "
                                   f"got {self.context_slices}")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PreprocessConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError(None, f"unknown preprocessing option(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        if "channels" in values:
            values["channels"] = tuple(values["channels"])
        return cls(**values)


@dataclass
class Preprocessed:
    """Network input on the FLAIR's voxels stored axially: `image` is (channels, z, y, x) float32,
    the slices' own channels; `slices_with_context` adds the neighbours' when the network is fed."""

    image: np.ndarray
    brain_mask: np.ndarray
    reference: sitk.Image  # the FLAIR stored axially: the grid of `image` and `brain_mask`
    orientation: Reorientation = Reorientation()  # from the input FLAIR's storage to `reference`
    input_flair: sitk.Image | None = None  # the FLAIR as given, when its storage was not axial
    t1_placement: T1Placement | None = None  # how the T1 was put on the FLAIR grid
    mask_method: str = "given"  # where the brain mask came from: given, threshold or deepbet


def overlap_fraction(moving: sitk.Image, reference: sitk.Image,
                     transform: sitk.Transform | None = None) -> float:
    """Fraction of the reference grid's voxels that fall inside the moving image's extent."""
    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(moving)
    covered = sitk.Resample(ones, reference, transform or sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return float(sitk.GetArrayViewFromImage(covered).mean())


def t1_on_flair_grid(t1: sitk.Image, flair: sitk.Image, config: PreprocessConfig,
                     t1_name: str = "T1", register: str | None = None) -> tuple[sitk.Image, T1Placement]:
    """Resample the T1 onto the FLAIR grid through world coordinates, or a rigid registration
    (`register`: auto, never or always; None: as the model's preprocessing recorded it).

    Under half of the FLAIR inside the T1 is refused, before and after registration; under
    FULL_OVERLAP warned about, since the uncovered part gets a zero T1 (and so no brain mask,
    and no lesions) there."""
    overlap = overlap_fraction(t1, flair)
    if overlap < MIN_OVERLAP:
        raise InputError(t1_name, "T1 and FLAIR do not overlap in world space (less than half of "
                                  "the FLAIR lies inside the T1); check the headers")
    mode = register or ("always" if config.register else "never")
    placement = place_t1(t1, flair, mode)
    if placement.registered:
        overlap = overlap_fraction(t1, flair, placement.transform)
    if overlap < MIN_OVERLAP:
        raise InputError(t1_name, "after registration less than half of the FLAIR lies inside the T1; "
                                  "check that both are scans of the same head, or use --register never")
    if overlap < FULL_OVERLAP:
        warnings.warn(InputWarning(t1_name, f"the T1 covers only {100 * overlap:.0f}% of the FLAIR; the rest "
                                            "is not segmented (check that both are whole scans)"),
                      stacklevel=2)
    resampled = sitk.Resample(sitk.Cast(t1, sitk.sitkFloat32), flair, placement.transform,
                              sitk.sitkLinear, 0.0)
    return resampled, placement


def compute_brain_mask(t1: np.ndarray, threshold: float) -> np.ndarray:
    """A brain mask for skull-stripped inputs (such as the synthetic benchmark).

    Smooth, threshold at a fraction of the 99th percentile, keep the largest connected component,
    fill holes. Limits: on images that still contain skull and scalp this keeps them; give a mask
    computed by a skull-stripping tool instead.
    """
    image = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(t1.astype(np.float32)), 1.0)
    smooth = sitk.GetArrayFromImage(image)
    level = threshold * float(np.percentile(smooth[smooth > 0], 99)) if (smooth > 0).any() else 0
    foreground = sitk.GetImageFromArray((smooth > level).astype(np.uint8))
    components = sitk.RelabelComponent(sitk.ConnectedComponent(foreground), sortByObjectSize=True)
    largest = components == 1
    filled = sitk.BinaryFillhole(largest)
    return sitk.GetArrayFromImage(filled).astype(bool)


def brain_mask_of(t1: sitk.Image, t1_on_flair: np.ndarray, flair: sitk.Image, placement: T1Placement,
                  config: PreprocessConfig, given: np.ndarray | None, method: str,
                  t1_name: str) -> tuple[np.ndarray, str]:
    """The brain mask on the FLAIR grid, and which method made it: a given mask always wins;
    `threshold` (and for now `auto`) is the fast mask for skull-stripped scans; `deepbet` runs
    deepbet's networks on the T1 (`brain_extraction.py`), for scans with skull and scalp."""
    if method not in MASK_METHODS:
        raise InputError("--brain-mask", f"must be one of {', '.join(MASK_METHODS)}, got '{method}'")
    if given is not None:
        if not given.any():
            raise InputError("brain mask", "brain mask is empty")
        return given, "given"
    if method == "deepbet":
        mask = mask_on_flair_grid(deepbet_mask(t1), flair, placement.transform)
    else:
        mask = compute_brain_mask(t1_on_flair, config.mask_threshold)
    if not mask.any():
        raise InputError(t1_name, f"the {'deepbet' if method == 'deepbet' else 'computed'} brain mask is "
                                  "empty (is the T1 blank?)")
    return mask, "deepbet" if method == "deepbet" else "threshold"


def n4_correct(image: sitk.Image, mask: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """N4 bias-field correction fitted on a shrunk grid, applied at full resolution.

    The fit is our NumPy N4 (`n4.py`), which computes what ITK's N4 filter computes in about a
    fifteenth of the time; the shrinking stays ITK's, so the fit sees the same voxels."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    shrink = [max(1, min(config.n4_shrink, size // 8)) for size in image.GetSize()]
    small = sitk.GetArrayFromImage(sitk.Shrink(image, shrink)) + np.float32(1e-3)
    small_mask = sitk.GetArrayFromImage(sitk.Shrink(image_like(mask.astype(np.uint8), image), shrink)) > 0
    lattice = n4.fit_log_bias_lattice(small, small_mask, [config.n4_iterations] * 4, config.n4_convergence)
    array = sitk.GetArrayFromImage(image)
    return (array / np.exp(n4.log_bias_field(lattice, array.shape))).astype(np.float32)


def zscore(array: np.ndarray, mask: np.ndarray, clip: float, name: str = "image") -> np.ndarray:
    """Zero mean, unit variance inside the brain; zero outside.

    Where float32 statistics overflow (intensities such as 1e26), they are taken again in float64,
    so such a scan normalizes like any other. An image with no contrast inside the brain (blank,
    constant) is refused: any mask cut from it would be noise.
    """
    values = array[mask]
    with np.errstate(over="ignore"):  # an overflow is handled just below
        mean, scale = float(values.mean()), float(values.std())
    if not (np.isfinite(mean) and np.isfinite(scale)):
        array = array.astype(np.float64)
        values = array[mask]
        mean, scale = float(values.mean()), float(values.std())
    if not scale > NO_CONTRAST * max(abs(mean), 1e-30):
        raise InputError(name, f"the image has no contrast inside the brain (intensity {mean:.4g} "
                               "everywhere): is it blank or constant?")
    normalized = np.clip((array - mean) / scale, -clip, clip)
    return np.where(mask, normalized, 0.0).astype(np.float32)


def preprocess(t1: sitk.Image, flair: sitk.Image, config: PreprocessConfig,
               brain_mask: np.ndarray | None = None, t1_name: str = "T1",
               flair_name: str = "FLAIR", register: str | None = None,
               mask_method: str = "auto") -> Preprocessed:
    """T1 + FLAIR images -> normalized 2-channel array on the FLAIR grid, with its brain mask.

    A FLAIR stored sagittally or coronally is first restored axially (`orientation`; a given
    `brain_mask` is on the input FLAIR's grid and follows it). The neighbouring slices' channels
    (`config.context_slices`) are not stacked here but where the network is fed."""
    orientation = Reorientation.of(flair)
    input_flair = flair
    flair = orientation.axial_image(flair)
    if brain_mask is not None:
        brain_mask = orientation.to_axial(brain_mask)
    t1_resampled, placement = t1_on_flair_grid(t1, flair, config, t1_name, register)
    t1_array = sitk.GetArrayFromImage(t1_resampled)
    brain_mask, mask_used = brain_mask_of(t1, t1_array, flair, placement, config, brain_mask, mask_method,
                                          t1_name)
    if config.n4:
        arrays = {"t1": n4_correct(t1_resampled, brain_mask, config),
                  "flair": n4_correct(flair, brain_mask, config)}
    else:
        arrays = {"t1": t1_array, "flair": sitk.GetArrayFromImage(sitk.Cast(flair, sitk.sitkFloat32))}
    names = {"t1": t1_name, "flair": flair_name}
    image = np.stack([zscore(arrays[name], brain_mask, config.clip, names[name])
                      for name in config.channels])
    return Preprocessed(image=image, brain_mask=brain_mask, reference=flair, orientation=orientation,
                        input_flair=None if orientation.is_identity else input_flair, t1_placement=placement,
                        mask_method=mask_used)
