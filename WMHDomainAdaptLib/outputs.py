"""Output paths that cannot destroy data, checked before any work starts.

An output must not be one of the inputs (`--out` = the FLAIR would overwrite the scan), nor
another output (`--prob` = `--out` would replace the mask with probabilities), and a volume must
go to a format that holds a 3D volume (ITK writes .png as one 2D slice). Case ids are checked
where they are read (`dataset.check_case_id`), so per-case outputs stay inside their folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import InputError

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")  # 3D formats ITK writes in one file


def _identity(path: Path) -> tuple:
    """What makes two paths one file: device and inode where it exists (links, `..`), else the
    resolved path. Sets of these keep the check linear for a cohort of many thousand cases."""
    try:
        status = path.stat()
        return ("inode", status.st_dev, status.st_ino)
    except OSError:
        return ("path", str(path.resolve()))


def check_volume_suffix(path: str | Path) -> Path:
    path = Path(path)
    if not path.name.lower().endswith(VOLUME_SUFFIXES):
        raise InputError(path, f"not a 3D volume format; name the output {', '.join(VOLUME_SUFFIXES)}")
    return path


def check_suffix(path: str | Path, suffix: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise InputError(path, f"the output must be a {suffix} file")
    return path


def check_outputs(outputs: Sequence[str | Path], inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output that is an input or that another output also names."""
    input_ids = {_identity(Path(p)) for p in inputs if p is not None}
    seen: set[tuple] = set()
    for output in map(Path, outputs):
        identity = _identity(output)
        if identity in input_ids:
            raise InputError(output, "is also an input; writing it would destroy that input "
                                     "(choose another output name)")
        if identity in seen:
            raise InputError(output, "is named for two outputs; each output needs its own file")
        seen.add(identity)
