"""Cases and datasets: a folder layout or a manifest CSV.

A case is a T1 and a FLAIR of one subject, optionally with a WMH label and a brain mask.

Folder layout: one sub-folder per case, named by its id, holding image files whose names contain
`t1`, `flair`, and optionally `wmh` (or `label`) and `mask` (case-insensitive), for example
`sub-001/sub-001_t1.nii.gz`, `sub-001/sub-001_flair.nii.gz`, `sub-001/sub-001_wmh.nii.gz`.

Manifest CSV: a header `id,t1,flair,label,mask` (label and mask optional, may be empty); paths
relative to the CSV's own folder or absolute.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .io import IMAGE_SUFFIXES, atomic_write

MANIFEST_COLUMNS = ("id", "t1", "flair", "label", "mask")
# "t1" must not follow a letter, or `patient1_flair.nii.gz` would also count as a T1.
ROLE_PATTERNS = {"t1": re.compile(r"(?<![a-z])t1"), "flair": re.compile("flair"),
                 "wmh/label": re.compile("wmh|label"), "mask": re.compile("mask")}


@dataclass(frozen=True)
class Case:
    case_id: str
    t1: Path
    flair: Path
    label: Path | None = None
    mask: Path | None = None


def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES)


def _find_role(folder: Path, role: str, required: bool, exclude: tuple = ()) -> Path | None:
    matches = [p for p in sorted(folder.iterdir())
               if _is_image(p) and p not in exclude and ROLE_PATTERNS[role].search(p.name.lower())]
    if len(matches) > 1:
        raise InputError(folder, f"several files match {role}: "
                                 f"{', '.join(p.name for p in matches)}")
    if not matches and required:
        raise InputError(folder, f"no image file with {role} in its name")
    return matches[0] if matches else None


def case_from_folder(folder: Path) -> Case:
    """Label and mask are found first, so `sub-1_flair_wmh` or `sub-1_t1_mask` is not an image."""
    label = _find_role(folder, "wmh/label", False)
    mask = _find_role(folder, "mask", False, exclude=(label,))
    return Case(case_id=folder.name,
                t1=_find_role(folder, "t1", True, exclude=(label, mask)),
                flair=_find_role(folder, "flair", True, exclude=(label, mask)),
                label=label, mask=mask)


def read_manifest(path: Path) -> list[Case]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: Excel's byte-order mark
            reader = csv.DictReader(handle)
            missing = {"id", "t1", "flair"} - set(reader.fieldnames or [])
            if missing:
                raise InputError(path, f"manifest lacks column(s) {', '.join(sorted(missing))}; "
                                       f"expected {','.join(MANIFEST_COLUMNS)}")
            rows = list(reader)
    except UnicodeDecodeError as error:
        raise InputError(path, f"manifest is not UTF-8 text (byte {error.start}); save it as UTF-8 "
                               "CSV") from None
    except csv.Error as error:
        raise InputError(path, f"manifest is not a readable CSV ({error})") from None
    _check_rows(rows, path)

    def resolve(value: str | None) -> Path | None:
        if not value:
            return None
        candidate = Path(value)
        return candidate if candidate.is_absolute() else path.parent / candidate

    return [Case(row["id"], resolve(row["t1"]), resolve(row["flair"]),
                 resolve(row.get("label")), resolve(row.get("mask"))) for row in rows]


def _check_rows(rows: list[dict], path: Path) -> None:
    """Every case needs an id, a T1 and a FLAIR, and ids must be unique (they name output files)."""
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        empty = [column for column in ("id", "t1", "flair") if not (row.get(column) or "").strip()]
        if empty:
            raise InputError(path, f"line {line}: empty {', '.join(empty)}")
        if row["id"] in seen:
            raise InputError(path, f"line {line}: case id {row['id']} appears twice")
        check_case_id(row["id"], f"{path}, line {line}")
        seen.add(row["id"])


def check_case_id(case_id: str, where: str | Path) -> str:
    """Case ids name output files (`<id>_wmh_pred.nii.gz`): a plain file name, nothing that climbs
    out of the output folder (`../x`) or into another one (`sub/dir`)."""
    if (case_id in (".", "..") or case_id.startswith(".") or any(c in case_id for c in '/\\:\0')
            or case_id != case_id.strip()):
        raise InputError(where, f"case id {case_id!r} is not a plain file name (no /, \\, :, leading "
                                "dot or surrounding spaces); it names the output files")
    return case_id


def load_cases(path: str | Path) -> list[Case]:
    """Cases from a manifest CSV, a folder of case folders, or a single case folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "dataset not found (expected a manifest .csv or a folder)")
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise InputError(path, "a dataset file must be a manifest .csv")
        cases = read_manifest(path)
    elif any(_is_image(p) for p in path.iterdir()):
        cases = [case_from_folder(path)]
    else:
        cases = [case_from_folder(folder) for folder in sorted(path.iterdir()) if folder.is_dir()]
    if not cases:
        raise InputError(path, "dataset holds no case")
    return cases


def load_datasets(paths: list[str | Path]) -> list[Case]:
    """The cases of several datasets, in order; a case id seen twice is refused.

    Training on the union of datasets (say a benchmark split plus extra scans) needs no merged
    manifest, and a repeated id would silently weigh one scan twice.
    """
    cases, origin = [], {}
    for path in paths:
        for case in load_cases(path):
            if case.case_id in origin:
                raise InputError(path, f"case id {case.case_id!r} is also in {origin[case.case_id]}")
            origin[case.case_id] = path
            cases.append(case)
    return cases


def write_manifest(cases: list[Case], path: str | Path) -> Path:
    """Write a manifest with paths relative to its folder where possible."""
    path = Path(path)

    def relative(value: Path | None) -> str:
        if value is None:
            return ""
        try:
            return str(Path(value).resolve().relative_to(path.parent.resolve()))
        except ValueError:
            return str(Path(value).resolve())

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(MANIFEST_COLUMNS)
            for case in cases:
                writer.writerow([case.case_id, relative(case.t1), relative(case.flair),
                                 relative(case.label), relative(case.mask)])

    return atomic_write(path, write)
