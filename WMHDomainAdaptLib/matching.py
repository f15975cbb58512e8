"""Pairing predicted masks with reference labels, for `wmhda evaluate`.

Three ways to name the cases, so that the command works on whatever `segment` or another tool
wrote without renaming files:

- `--pred P.nii.gz --ref R.nii.gz`: one pair.
- `--pred FOLDER --ref FOLDER`: reference labels are the image files of the folder, or, in the
  dataset layout, the `wmh`/`label` file of each case sub-folder (named by case id). Predictions
  are matched by case id.
- `--pred FOLDER --ref MANIFEST.csv`: the manifest's label column; predictions matched by id.

A prediction for case `ID` is a file `ID.nii.gz` (any image format), `ID_<role>.nii.gz` where the
roles are one or more of wmh, label, seg, segmentation, pred, prediction (so `segment --out-dir`'s
`ID_wmh_pred.nii.gz` matches and its `ID_wmh_prob.nii.gz` does not), or, in a sub-folder `ID/`,
such a file, a file named by a role alone (`segmentation.nrrd`), or the folder's only image.
Cases without a reference label are skipped with a note; a labelled case without a prediction is
an error, because a silently smaller test set would flatter the mean.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .dataset import load_cases
from .errors import InputError
from .io import IMAGE_SUFFIXES

ROLE_PATTERN = re.compile(r"([_\-.](wmh|labels?|seg|segmentation|pred|prediction))+$",
                          re.IGNORECASE)
LABEL_KEYWORDS = ("wmh", "label")

Pair = tuple[str, Path, Path]  # case id, prediction, reference


def note(message: str) -> None:
    print(f"wmhda evaluate: note: {message}", file=sys.stderr)


def image_stem(path: Path) -> str | None:
    """The file name without its image suffix, or None if it is not an image file name."""
    lower = path.name.lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return path.name[:-len(suffix)]
    return None


def case_key(stem: str) -> str:
    """`sub-001_wmh`, `sub-001-pred` and `segment`'s `sub-001_wmh_pred` all name case `sub-001`."""
    return ROLE_PATTERN.sub("", stem)


def _images(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_file() and image_stem(p) is not None]


def _label_in(folder: Path, keywords: tuple[str, ...]) -> Path | None:
    """The one image in a case folder whose name holds a keyword (or its only non-T1/FLAIR image)."""
    images = _images(folder)
    matches = [p for p in images if any(k in p.name.lower() for k in keywords)]
    others = [p for p in images if not any(k in p.name.lower() for k in ("t1", "flair"))]
    if not matches and len(images) == 1 and others:
        matches = others
    if len(matches) > 1:
        raise InputError(folder, f"several candidate files: {', '.join(p.name for p in matches)}")
    return matches[0] if matches else None


def references_from_folder(folder: Path) -> dict[str, Path]:
    """Case id -> label, from a folder of label files or of case sub-folders."""
    references: dict[str, Path] = {}
    images = _images(folder)
    labels = [p for p in images if any(k in p.name.lower() for k in LABEL_KEYWORDS)]
    for path in labels or images:  # a single case folder also holds its T1 and FLAIR
        references[case_key(image_stem(path))] = path
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = _label_in(sub, LABEL_KEYWORDS)
        if label is None:
            note(f"case {sub.name}: no wmh/label file in {sub}; skipped")
        else:
            references[sub.name] = label
    return references


def references_from_manifest(manifest: Path) -> dict[str, Path]:
    cases = load_cases(manifest)
    unlabelled = [case.case_id for case in cases if case.label is None]
    if unlabelled:
        note(f"{len(unlabelled)} case(s) without a label skipped: {', '.join(unlabelled[:5])}")
    return {case.case_id: case.label for case in cases if case.label is not None}


def predictions_in(folder: Path) -> dict[str, Path]:
    """Case id -> prediction file, from files named by id and from sub-folders named by id."""
    found: dict[str, list[Path]] = {}
    for path in _images(folder):
        found.setdefault(case_key(image_stem(path)), []).append(path)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        found.setdefault(sub.name, []).extend(_predictions_in_case_folder(sub))
    found = {key: paths for key, paths in found.items() if paths}
    return {key: paths[0] if len(paths) == 1 else _ambiguous(key, paths) for key, paths in found.items()}


def _predictions_in_case_folder(folder: Path) -> list[Path]:
    """In `ID/`: `ID.nii.gz`, `ID_wmh_pred.nii.gz`, a bare `segmentation.nii.gz`, or its only image."""
    images = _images(folder)
    named = [p for p in images if case_key(image_stem(p)) == folder.name
             or ROLE_PATTERN.fullmatch("_" + image_stem(p))]
    return named or (images if len(images) == 1 else [])


def _ambiguous(case_id: str, paths: list[Path]) -> Path:
    raise InputError(paths[0].parent, f"several predictions for case {case_id}: "
                                      f"{', '.join(p.name for p in paths)}")


def match_pairs(pred: Path, ref: Path) -> list[Pair]:
    """(case id, prediction, reference) for every labelled case, in reference order."""
    for path, role in ((pred, "prediction"), (ref, "reference")):
        if not path.exists():
            raise InputError(path, f"{role} not found")
    if ref.is_file() and ref.suffix.lower() != ".csv":
        references = {case_key(image_stem(ref) or ref.stem): ref}
    else:
        references = references_from_manifest(ref) if ref.is_file() else references_from_folder(ref)
    if not references:
        raise InputError(ref, "no reference label found")
    if pred.is_file():
        if len(references) != 1:
            raise InputError(pred, f"one prediction file for {len(references)} reference cases; "
                                   f"give a folder of predictions named by case id")
        return [(case_id, pred, label) for case_id, label in references.items()]
    predictions = predictions_in(pred)
    missing = [case_id for case_id in references if case_id not in predictions]
    if missing:
        raise InputError(pred, f"no prediction for {len(missing)} case(s): {', '.join(missing[:10])} "
                               f"(expected ID.nii.gz, ID_wmh.nii.gz or a folder ID/)")
    return [(case_id, predictions[case_id], label) for case_id, label in references.items()]
