"""Reading and writing volumes with SimpleITK, with exact geometry and clear errors.

Arrays in this library are always in SimpleITK's (z, y, x) order; the physical geometry lives in
the reference `sitk.Image` they came from, and `image_like` puts it back unchanged. Writes go to
a temporary file in the target folder and are renamed into place, so a crash never leaves a
half-written output.
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".seg.nrrd")
GEOMETRY_TOLERANCE = 1e-4  # mm, and direction cosines
NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI-1 datatype codes FLOAT32, FLOAT64


def _process_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_process_umask()  # what open() would give; mkstemp's 0600 hides outputs


def nifti_nonfinite_count(path: Path) -> int:
    """NaN/Inf voxels stored in a floating-point NIfTI-1 file (0 for other files).

    ITK 5.4's NIfTI reader silently turns NaN and Inf into 0 (fixed only in ITK 6, PR #6683), so
    `read_image` cannot see them in the array; this reads the bytes on disk instead.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        header = handle.read(348)
        order = next((o for o in "<>" if struct.unpack(f"{o}i", header[:4])[0] == 348), None)
        if order is None:
            return 0
        dims = struct.unpack(f"{order}8h", header[40:56])
        dtype = NIFTI_FLOAT_TYPES.get(struct.unpack(f"{order}h", header[70:72])[0])
        if dtype is None or not 1 <= dims[0] <= 7:
            return 0
        offset = int(struct.unpack(f"{order}f", header[108:112])[0])
        handle.read(max(offset - 348, 0))
        count = int(np.prod(dims[1:dims[0] + 1]))
        data = np.frombuffer(handle.read(count * int(dtype[1])), dtype=f"{order}{dtype}")
    return int((~np.isfinite(data)).sum())


def read_image(path: str | Path, role: str = "image") -> sitk.Image:
    """Read a 3D scalar volume; reject missing, unreadable, non-3D and non-finite files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{role} file not found")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"
        raise InputError(path, f"cannot read {role} ({first_line})") from None
    if image.GetDimension() != 3:
        raise InputError(path, f"{role} must be a 3D volume, got a {image.GetDimension()}D image")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"{role} must be a scalar volume, got "
                               f"{image.GetNumberOfComponentsPerPixel()} components per voxel")
    if any(size < 2 for size in image.GetSize()):
        raise InputError(path, f"{role} must be a 3D volume, got size {image.GetSize()}")
    array = sitk.GetArrayViewFromImage(image)
    count = int((~np.isfinite(array)).sum()) if array.dtype.kind == "f" else 0
    if not count and array.dtype.kind == "f" and path.name.lower().endswith((".nii", ".nii.gz")):
        count = nifti_nonfinite_count(path)
    if count:
        raise InputError(path, f"{role} holds {count} NaN/Inf voxels")
    return image


def same_grid(a: sitk.Image, b: sitk.Image, tolerance: float = GEOMETRY_TOLERANCE) -> bool:
    """True when two images share size, spacing, origin and direction (within `tolerance`)."""
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance))


def describe_grid(image: sitk.Image) -> str:
    spacing = ", ".join(f"{s:.3g}" for s in image.GetSpacing())
    return f"size {image.GetSize()}, spacing ({spacing}) mm"


def read_label(path: str | Path, reference: sitk.Image, role: str = "label") -> np.ndarray:
    """Read a WMH label on the reference (FLAIR) grid as uint8 with values in {0, 1, 2}.

    1 is WMH; 2 is the challenge's "other pathology", kept so metrics can ignore it.
    """
    image = read_image(path, role)
    if not same_grid(image, reference):
        raise InputError(path, f"{role} grid ({describe_grid(image)}) differs from the FLAIR grid "
                               f"({describe_grid(reference)}); resample it onto the FLAIR first")
    array = sitk.GetArrayFromImage(image)
    values = np.unique(array)
    unexpected = [v for v in values.tolist() if v not in (0, 1, 2)]
    if unexpected:
        shown = ", ".join(f"{v:g}" for v in unexpected[:5])
        raise InputError(path, f"{role} must be binary (0/1, optionally 2 = other pathology); "
                               f"found values {shown}")
    return array.astype(np.uint8)


def read_mask(path: str | Path, reference: sitk.Image) -> np.ndarray:
    """Read a brain mask on the reference grid as bool; an empty mask is an error."""
    array = read_label(path, reference, role="brain mask") > 0
    if not array.any():
        raise InputError(path, "brain mask is empty")
    return array


def image_like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Wrap a (z, y, x) array in an image with the reference's exact spacing, origin, direction."""
    if tuple(array.shape[::-1]) != reference.GetSize():
        raise ValueError(f"array shape {array.shape} does not match reference size "
                         f"{reference.GetSize()[::-1]} (z, y, x)")
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return path.suffix


def atomic_write(path: str | Path, write, suffix: str | None = None) -> Path:
    """Call `write(tmp_path)` then rename the temporary file onto `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else _suffix(path)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}",
                                        dir=path.parent)
    os.close(handle)
    try:
        write(Path(tmp_name))
        os.chmod(tmp_name, FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write atomically; the format follows the file name (.nii.gz, .nrrd, .mha ...)."""
    return atomic_write(path, lambda tmp: sitk.WriteImage(image, str(tmp), compress))
