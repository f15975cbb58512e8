"""`wmhda evaluate`: score predicted WMH masks against reference labels (challenge metrics).

Which prediction goes with which reference is `matching.py`'s job; this module scores the pairs
and prints and writes the table.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import SimpleITK as sitk

from ..io import atomic_write, same_grid
from ..matching import match_pairs, note
from ..metrics import evaluate_files, summarize
from ..outputs import check_outputs, check_suffix
from ..progress import ProgressTracker, print_bar

NAME = "evaluate"
HELP = "Score predicted WMH masks against reference labels with the MICCAI 2017 WMH challenge metrics."

TABLE_COLUMNS = (("dsc", "DSC", "{:.3f}"), ("hd95", "HD95 mm", "{:.2f}"), ("avd", "AVD %", "{:.1f}"),
                 ("recall", "recall", "{:.3f}"), ("f1", "F1", "{:.3f}"),
                 ("ref_ml", "ref mL", "{:.2f}"), ("pred_ml", "pred mL", "{:.2f}"))
CSV_COLUMNS = ("case", "dsc", "hd95", "avd", "recall", "f1", "precision", "n_ref_lesions",
               "n_pred_lesions", "n_detected", "ref_ml", "pred_ml", "overlap_ml", "prediction", "reference")

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, type=Path, metavar="P",
                        help="a prediction file, or a folder of predictions named by case id")
    parser.add_argument("--ref", required=True, type=Path, metavar="R",
                        help="a reference label file, a folder of labels or case folders, "
                             "or a manifest CSV (its label column)")
    parser.add_argument("--csv", type=Path, metavar="OUT.csv",
                        help="also write the per-case, mean and median rows to this CSV")


def _cell(value, pattern: str) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else pattern.format(value)


def format_table(rows: list[dict], summary: dict) -> str:
    """Per-case rows, then mean and median rows, then how many cases each summary skipped."""
    header = ["case"] + [title for _, title, _ in TABLE_COLUMNS]
    body = [[row["case"]] + [_cell(row[key], fmt) for key, _, fmt in TABLE_COLUMNS] for row in rows]
    for statistic in ("mean", "median"):
        body.append([statistic] + [_cell(summary.get(key, {}).get(statistic), fmt)
                                   for key, _, fmt in TABLE_COLUMNS])
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]

    def render(line: list[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(line, widths)))

    rule = "  ".join("-" * w for w in widths)
    lines = [render(header), rule] + [render(line) for line in body[:-2]] + [rule]
    lines += [render(line) for line in body[-2:]]
    for key, title, _ in TABLE_COLUMNS:
        count = summary.get(key, {}).get("count", len(rows))
        if count < len(rows):
            lines.append(f"{title}: mean and median over {count} of {len(rows)} cases (NaN: undefined)")
    if "pooled_dsc" in summary:
        lines.append(f"pooled DSC over all cases: {summary['pooled_dsc']['mean']:.3f}")
    return "\n".join(lines)


def write_csv(rows: list[dict], summary: dict, path: Path) -> Path:
    """Per-case rows then `mean` and `median` rows, written atomically; NaN is written as `nan`."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({**row, "prediction": str(row["prediction"]),
                              "reference": str(row["reference"])} for row in rows)
            for statistic in ("mean", "median"):
                writer.writerow({"case": statistic, **{key: values[statistic]
                                                        for key, values in summary.items()}})

    return atomic_write(path, write)


def header(path: Path) -> sitk.Image:
    """An empty image with the file's geometry, read from the header only (no voxel data)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    image = sitk.Image([1] * reader.GetDimension(), sitk.sitkUInt8)
    image.SetSpacing(reader.GetSpacing())
    image.SetOrigin(reader.GetOrigin())
    image.SetDirection(reader.GetDirection())
    return image


def warn_if_headers_differ(case_id: str, prediction: Path, reference: Path) -> None:
    """The challenge compares voxel by voxel; say so when the headers disagree (e.g. a flip)."""
    try:
        differ = not same_grid(header(prediction), header(reference))
    except RuntimeError:
        return  # unreadable: evaluate_files reports it properly
    if differ:
        note(f"case {case_id}: the prediction's spacing/origin/direction differ from the "
             f"reference's; compared voxel by voxel on the reference grid, as the challenge does")


def run(args: argparse.Namespace) -> int:
    pairs = match_pairs(args.pred, args.ref)
    if args.csv is not None:
        check_outputs([check_suffix(args.csv, ".csv")], [path for _, *files in pairs for path in files])
    tracker = ProgressTracker(NAME, len(pairs), print_bar if sys.stderr.isatty() else None)
    rows = []
    for done, (case_id, prediction, reference) in enumerate(pairs, start=1):
        warn_if_headers_differ(case_id, prediction, reference)
        rows.append({"case": case_id, **evaluate_files(prediction, reference),
                     "prediction": prediction, "reference": reference})
        tracker.update(done)
    summary = summarize(rows)
    print(format_table(rows, summary))
    if args.csv is not None:
        print(f"wrote {write_csv(rows, summary, args.csv)}")
    return 0
