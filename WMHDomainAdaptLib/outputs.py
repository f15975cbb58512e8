"""Output paths that cannot destroy data, checked before any work starts.

An output must not be one of the inputs (`--out` = the FLAIR would overwrite the scan), nor
another output (`--prob` = `--out` would replace the mask with probabilities), and a volume must
go to a format that holds a 3D volume (ITK writes .png as one 2D slice). Case ids are checked
where they are read (`dataset.check_case_id`), so per-case outputs stay inside their folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import InputError

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")  # 3D formats ITK writes in one file


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


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
    outputs = [Path(p) for p in outputs]
    inputs = [Path(p) for p in inputs if p is not None]
    for index, output in enumerate(outputs):
        for source in inputs:
            if _same_file(output, source):
                raise InputError(output, "is also an input; writing it would destroy that input "
                                         "(choose another output name)")
        for other in outputs[index + 1:]:
            if _same_file(output, other):
                raise InputError(output, "is named for two outputs; each output needs its own file")
