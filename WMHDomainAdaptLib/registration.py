"""T1 onto FLAIR: through the headers' world coordinates, and rigidly registered when they disagree.

T1 and FLAIR are acquired minutes apart, so the head may have moved between them. Registering
every pair would cost about 3 s a scan and, on a pair that was aligned, move it by a few tenths of
a millimetre for nothing; so `--register auto` first asks whether the pair is misaligned:
the Mattes mutual information of the two images is evaluated at the header alignment and at
small shifts (PROBE_MM) and rotations (PROBE_DEG) about each axis; a parabola through each
triple places that axis's best alignment. Aligned images peak at the header alignment; when a
peak lies further than MISALIGNED_MM or MISALIGNED_DEG from it, the pair is registered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .errors import InputError

REGISTER_CHOICES = ("auto", "never", "always")
PROBE_MM, PROBE_DEG = 2.0, 2.0
MISALIGNED_MM, MISALIGNED_DEG = 1.0, 1.0
SAMPLING, SAMPLING_SEED, HISTOGRAM_BINS = 0.05, 0, 32
REGISTRATION_SAMPLING = 0.1
COARSE_MM = 2.0  # the probes read the images at about this resolution


@dataclass(frozen=True)
class Alignment:
    """Where the mutual information of a pair peaks, per axis, from the headers' alignment."""

    shift_mm: tuple[float, float, float]
    rotation_deg: tuple[float, float, float]

    @property
    def misaligned(self) -> bool:
        return (max(map(abs, self.shift_mm)) > MISALIGNED_MM
                or max(map(abs, self.rotation_deg)) > MISALIGNED_DEG)

    def describe(self) -> str:
        shift = ", ".join(f"{v:+.1f}" for v in self.shift_mm)
        rotation = ", ".join(f"{v:+.1f}" for v in self.rotation_deg)
        return f"best alignment at shift ({shift}) mm, rotation ({rotation}) degrees from the headers'"


def _centre(image: sitk.Image) -> tuple[float, float, float]:
    return image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])


def _coarse(image: sitk.Image) -> sitk.Image:
    """The image at about 2 mm (a voxel mean): the probes' misalignments are 2 mm and 2 degrees."""
    factors = [max(1, int(round(COARSE_MM / spacing))) for spacing in image.GetSpacing()]
    return sitk.BinShrink(sitk.Cast(image, sitk.sitkFloat32), factors)


def _metric(fixed: sitk.Image, moving: sitk.Image) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING, seed=SAMPLING_SEED)
    method.SetInterpolator(sitk.sitkLinear)
    return method


def _peak(minus: float, centre: float, plus: float, step: float) -> float:
    """Offset of a parabola's minimum through three metric values (lower is better); a probe's
    value when the three do not curve upwards (the peak lies beyond the probes)."""
    curvature = minus - 2 * centre + plus
    if curvature <= 0:
        return -step if minus < plus else step
    return float(np.clip(step * (minus - plus) / (2 * curvature), -2 * step, 2 * step))


def alignment(t1: sitk.Image, flair: sitk.Image) -> Alignment:
    """Where, near the header alignment, the mutual information of T1 and FLAIR peaks."""
    fixed, moving = _coarse(flair), _coarse(t1)
    centre = _centre(flair)
    method = _metric(fixed, moving)
    method.SetMetricUseFixedImageGradientFilter(False)  # values only: no gradient images
    method.SetMetricUseMovingImageGradientFilter(False)

    def value(rotation=(0.0, 0.0, 0.0), shift=(0.0, 0.0, 0.0)) -> float:
        method.SetMovingInitialTransform(sitk.Euler3DTransform(centre, *np.deg2rad(rotation), shift))
        return method.MetricEvaluate(fixed, moving)

    at_headers = value()
    shifts, rotations = [], []
    for axis in range(3):
        step = np.eye(3)[axis]
        shifts.append(_peak(value(shift=-PROBE_MM * step), at_headers, value(shift=PROBE_MM * step),
                            PROBE_MM))
        rotations.append(_peak(value(rotation=-PROBE_DEG * step), at_headers,
                               value(rotation=PROBE_DEG * step), PROBE_DEG))
    return Alignment(tuple(shifts), tuple(rotations))


def rigid_register(t1: sitk.Image, flair: sitk.Image) -> sitk.Transform:
    """Rigid (Euler) T1->FLAIR registration: Mattes mutual information, two resolutions."""
    fixed, moving = sitk.Cast(flair, sitk.sitkFloat32), sitk.Cast(t1, sitk.sitkFloat32)
    # from the headers' alignment, rotating about the FLAIR's centre: the best first guess for a
    # head that moved a little (centring the two grids would shift a T1 of another field of view)
    initial = sitk.Euler3DTransform(_centre(flair))
    method = _metric(fixed, moving)
    method.SetMetricSamplingStrategy(method.REGULAR)  # the same samples every run: repeatable
    method.SetMetricSamplingPercentage(REGISTRATION_SAMPLING)
    method.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, 200, relaxationFactor=0.5)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2, 1, 0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=False)
    return method.Execute(fixed, moving)


@dataclass(frozen=True)
class T1Placement:
    """How the T1 was put on the FLAIR grid: the transform, and whether it was registered."""

    transform: sitk.Transform
    registered: bool
    reason: str


def place_t1(t1: sitk.Image, flair: sitk.Image, mode: str) -> T1Placement:
    """The T1->FLAIR transform for `mode` (auto, never, always)."""
    if mode not in REGISTER_CHOICES:
        raise InputError("--register", f"must be one of {', '.join(REGISTER_CHOICES)}, got '{mode}'")
    if mode == "never":
        return T1Placement(sitk.Transform(), False, "headers (registration off)")
    if mode == "auto":
        try:
            found = alignment(t1, flair)
        except RuntimeError:  # ITK cannot measure a blank or constant image; later checks refuse it
            return T1Placement(sitk.Transform(), False, "headers (alignment not measurable)")
        if not found.misaligned:
            return T1Placement(sitk.Transform(), False, f"headers ({found.describe()})")
        reason = f"registered: {found.describe()}"
    else:
        reason = "registered (asked for)"
    try:
        return T1Placement(rigid_register(t1, flair), True, reason)
    except RuntimeError as error:
        cause = (str(error).strip().splitlines() or ["unknown reason"])[-1]
        raise InputError("T1", f"rigid registration onto the FLAIR failed ({cause}); check the scans, "
                               "or use --register never") from None
