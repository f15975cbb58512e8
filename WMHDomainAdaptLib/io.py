"""Reading and writing volumes with SimpleITK, with exact geometry and clear errors.

Arrays in this library are always in SimpleITK's (z, y, x) order; the physical geometry lives in
the reference `sitk.Image` they came from, and `image_like` puts it back unchanged. Writes go to
a temporary file in the target folder and are renamed into place, so a crash never leaves a
half-written output.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import gzip
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
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


LOW_DISK_BYTES = 1 << 20  # a failed write with less free space than this is reported as a full disk
QFORM_SFORM_TOLERANCE_MM = 0.1  # corners of the volume placed further apart than this: refused
DICOM_SERIES_DESCRIPTION = "0008|103e"


@dataclass
class NiftiFacts:
    """What ITK's NIfTI reader does not tell us, read from the header and the bytes on disk."""

    missing_bytes: int  # voxel data the header announces but the file lacks (a cut-off file)
    nonfinite: int  # NaN/Inf voxels (ITK 5.4 silently turns them into 0; fixed only in ITK 6)
    form_disagreement_mm: float  # how far qform and sform place the volume's corners apart; 0 if one is unset


def _quaternion_affine(header: bytes, order: str) -> np.ndarray:
    b, c, d = struct.unpack(f"{order}3f", header[256:268])
    offset = struct.unpack(f"{order}3f", header[268:280])
    pixdim = struct.unpack(f"{order}8f", header[76:108])
    a = np.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
    rotation = np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                         [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                         [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]])
    qfac = -1.0 if pixdim[0] < 0 else 1.0
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.array([pixdim[1], pixdim[2], qfac * pixdim[3]])
    affine[:3, 3] = offset
    return affine


def _form_disagreement(header: bytes, order: str, dims: tuple[int, ...]) -> float:
    qform_code, sform_code = struct.unpack(f"{order}2h", header[252:256])
    if qform_code <= 0 or sform_code <= 0:
        return 0.0
    sform = np.eye(4)
    sform[:3] = np.array(struct.unpack(f"{order}12f", header[280:328])).reshape(3, 4)
    qform = _quaternion_affine(header, order)
    corners = np.array([[i, j, k, 1.0] for i in (0, dims[1] - 1) for j in (0, dims[2] - 1)
                        for k in (0, max(dims[3], 1) - 1)]).T
    return float(np.linalg.norm((qform @ corners - sform @ corners)[:3], axis=0).max())


def inspect_nifti(path: Path) -> NiftiFacts | None:
    """Facts about a NIfTI-1 file (None for other formats); reads the whole (decompressed) file."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return None
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        header = handle.read(348)
        order = next((o for o in "<>" if len(header) == 348 and struct.unpack(f"{o}i", header[:4])[0] == 348),
                     None)
        if order is None:
            return None
        dims = struct.unpack(f"{order}8h", header[40:56])
        if not 1 <= dims[0] <= 7:
            return None
        bits = struct.unpack(f"{order}h", header[72:74])[0]
        offset = int(struct.unpack(f"{order}f", header[108:112])[0])
        expected = int(np.prod(dims[1:dims[0] + 1])) * max(bits, 0) // 8
        try:
            handle.read(max(offset - 348, 0))
            data = handle.read(expected)
        except EOFError:  # a cut-off .gz stream
            data = b""
    dtype = NIFTI_FLOAT_TYPES.get(struct.unpack(f"{order}h", header[70:72])[0])
    nonfinite = 0
    if dtype is not None and len(data) == expected:
        nonfinite = int((~np.isfinite(np.frombuffer(data, dtype=f"{order}{dtype}"))).sum())
    return NiftiFacts(expected - len(data), nonfinite, _form_disagreement(header, order, dims))


def _last_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[-1] if str(error).strip() else "unknown reason"


def _series_description(files: tuple[str, ...]) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    try:
        reader.ReadImageInformation()
        described = reader.GetMetaData(DICOM_SERIES_DESCRIPTION) if reader.HasMetaDataKey(
            DICOM_SERIES_DESCRIPTION) else ""
    except RuntimeError:
        described = ""
    return f"'{described.strip()}'" if described.strip() else "no description"


def read_dicom_series(folder: Path, role: str) -> sitk.Image:
    """The one DICOM series in `folder`; none or several is an error that names what is there."""
    with _c_stderr_captured():
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputError(folder, f"{role}: a folder is read as a DICOM series, and this one holds none")
    files = {uid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid) for uid in series}
    if len(series) > 1:
        listed = "; ".join(f"{uid} ({len(names)} files, {_series_description(names)})"
                           for uid, names in files.items())
        raise InputError(folder, f"{role}: holds {len(series)} DICOM series ({listed}); put the "
                                 f"{role}'s series in a folder of its own and give that folder")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files[series[0]])
    try:
        with _c_stderr_captured():
            return reader.Execute()
    except RuntimeError as error:
        raise InputError(folder, f"cannot read the {role} DICOM series ({_last_line(error)})") from None


def read_image(path: str | Path, role: str = "image") -> sitk.Image:
    """Read a 3D scalar volume (a file, or a folder holding one DICOM series); reject missing,
    unreadable, non-3D and non-finite ones."""
    path = Path(path)
    if path.is_dir():
        return _checked(read_dicom_series(path, role), path, role)
    if not path.is_file():
        raise InputError(path, f"{role} file not found")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InputError(path, f"cannot read {role} ({_last_line(error)})") from None
    return _checked(image, path, role)


def _checked(image: sitk.Image, path: Path, role: str) -> sitk.Image:
    if image.GetDimension() != 3:
        raise InputError(path, f"{role} must be a 3D volume, got a {image.GetDimension()}D image")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"{role} must be a scalar volume, got "
                               f"{image.GetNumberOfComponentsPerPixel()} components per voxel")
    if any(size < 2 for size in image.GetSize()):
        raise InputError(path, f"{role} must be a 3D volume, got size {image.GetSize()}")
    facts = inspect_nifti(path) if path.is_file() else None
    if facts is not None and facts.missing_bytes > 0:
        raise InputError(path, f"{role} file is cut off: {facts.missing_bytes} bytes of voxel data are "
                               "missing (an interrupted copy or download?)")
    if facts is not None and facts.form_disagreement_mm > QFORM_SFORM_TOLERANCE_MM:
        raise InputError(path, f"{role} header's qform and sform disagree: they place the volume up to "
                               f"{facts.form_disagreement_mm:.1f} mm apart, so its position is ambiguous; "
                               "make them agree (e.g. fslorient -copysform2qform) and try again")
    array = sitk.GetArrayViewFromImage(image)
    count = int((~np.isfinite(array)).sum()) if array.dtype.kind == "f" else 0
    if not count and facts is not None:
        count = facts.nonfinite
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


def _remove_leftovers(path: Path) -> None:
    """Hidden temporary files of an earlier write of `path` that was killed before its rename."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        leftover.unlink(missing_ok=True)


def _cannot_write(path: Path, error: BaseException) -> InputError:
    """One line naming the file and the cause (no space left, permission, read-only filesystem)."""
    cause = (getattr(error, "strerror", None) or getattr(error, "problem", None)
             or (str(error).strip().splitlines() or [type(error).__name__])[-1])
    if getattr(error, "errno", None) is None and _disk_is_full(path):  # a writer that gave no reason
        cause = os.strerror(errno.ENOSPC)
    return InputError(path, f"cannot write ({cause}); nothing was written")


@contextlib.contextmanager
def _c_stderr_captured():
    """ITK's C writers print their own errors ("** ERROR: NWAD ...") straight to file descriptor 2;
    hold them back so that a failure reads as one line, and pass them on when the write succeeds."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (some embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            if text and not failed:
                sys.stderr.write(text)


def atomic_write(path: str | Path, write: Callable[[Path], object], suffix: str | None = None,
                 verify: Callable[[Path], None] | None = None) -> Path:
    """`write(tmp)`, check what landed on disk, then rename it onto `path` in one step.

    Some writers (ITK's among them) return without an error on a full disk and leave an empty or
    cut-off file: so the file is flushed to disk, must not be empty, and `verify(tmp)` (a re-read)
    must pass before the rename. Any failure raises `InputError` naming `path` and the cause, and
    leaves `path` as it was.
    """
    path = Path(path)
    suffix = suffix if suffix is not None else _suffix(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(path)
        handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
        os.close(handle)
    except OSError as error:
        raise _cannot_write(path, error) from None
    tmp = Path(tmp_name)
    try:
        write(tmp)
        _flush_to_disk(tmp)
        if tmp.stat().st_size == 0:
            raise OSError(errno.ENOSPC, "the written file is empty (is the disk full?)")
        if verify is not None:
            verify(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        # writers report a failed write as OSError, RuntimeError (ITK) or their own error type
        # (safetensors): any of these on a full disk is the full disk
        if isinstance(error, (OSError, RuntimeError, InputError)) or (
                isinstance(error, Exception) and _disk_is_full(path)):
            raise _cannot_write(path, error) from None
        raise
    return path


def _disk_is_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < LOW_DISK_BYTES
    except OSError:
        return False


def _flush_to_disk(path: Path) -> None:
    """fsync: a full disk can first show up here, not in write()."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write atomically and verified (re-read: size and geometry); the format follows the name."""
    def write(tmp: Path) -> None:
        with _c_stderr_captured():
            sitk.WriteImage(image, str(tmp), compress)
            verify(tmp)

    def verify(tmp: Path) -> None:
        written = read_image(tmp, "written image")
        if not same_grid(written, image):
            raise OSError(errno.EIO, "the written image does not read back as written")

    return atomic_write(path, write)
