"""`wmhda segment`: WMH masks (and probabilities) for one case or a whole dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cases import prepare_case
from ..dataset import Case, load_cases
from ..devices import resolve_device
from ..errors import InputError
from ..inference import segment_prepared, warn_if_far_spacing
from ..io import write_image
from ..modelfile import load_model
from ..outputs import check_outputs, check_volume_suffix
from ..progress import ProgressTracker
from ._common import add_device_argument, add_progress_argument, at_least, progress_printer

NAME = "segment"
HELP = "segment WMH on T1 + FLAIR with a model file (one case, or a folder/manifest of cases)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model file (.safetensors)")
    parser.add_argument("--t1", help="T1 image (single case)")
    parser.add_argument("--flair", help="FLAIR image (single case); outputs are on its grid")
    parser.add_argument("--mask", help="brain mask on the FLAIR grid (optional)")
    parser.add_argument("--out", help="output mask file (single case)")
    parser.add_argument("--prob", help="also write the probability map here (single case)")
    parser.add_argument("--cases", help="batch: manifest CSV or folder of cases")
    parser.add_argument("--out-dir", help="batch: folder for <id>_wmh_pred.nii.gz (and _prob)")
    parser.add_argument("--write-prob", action="store_true", help="batch: also write probabilities")
    parser.add_argument("--min-lesion-mm3", type=at_least(0.0, float), default=0.0,
                        help="drop predicted lesions smaller than this volume")
    add_device_argument(parser)
    add_progress_argument(parser)


def jobs_from_args(args: argparse.Namespace) -> list[tuple[Case, Path, Path | None]]:
    """(case, mask path, probability path) for each case to segment; outputs checked against inputs."""
    jobs = _jobs(args)
    outputs = [path for _, mask, prob in jobs for path in (mask, prob) if path is not None]
    inputs = [path for case, _, _ in jobs for path in (case.t1, case.flair, case.label, case.mask)]
    check_outputs(outputs, inputs + [Path(args.model)])
    for path in outputs:
        check_volume_suffix(path)
    return jobs


def _jobs(args: argparse.Namespace) -> list[tuple[Case, Path, Path | None]]:
    if args.cases:
        if not args.out_dir:
            raise InputError("--out-dir", "batch segmentation (--cases) needs --out-dir")
        out_dir = Path(args.out_dir)
        return [(case, out_dir / f"{case.case_id}_wmh_pred.nii.gz",
                 out_dir / f"{case.case_id}_wmh_prob.nii.gz" if args.write_prob else None)
                for case in load_cases(args.cases)]
    if not (args.t1 and args.flair and args.out):
        raise InputError(None, "give --t1, --flair and --out (or --cases and --out-dir)")
    case = Case(Path(args.flair).name.split(".")[0], Path(args.t1), Path(args.flair),
                mask=Path(args.mask) if args.mask else None)
    return [(case, Path(args.out), Path(args.prob) if args.prob else None)]


def run(args: argparse.Namespace) -> int:
    jobs = jobs_from_args(args)
    device = resolve_device(args.device)
    model = load_model(args.model, device)
    progress = progress_printer(args)
    tracker = ProgressTracker("cases", len(jobs), progress if len(jobs) > 1 else None)
    for index, (case, mask_path, prob_path) in enumerate(jobs):
        prepared = prepare_case(case, model.preprocess_config)
        warning = warn_if_far_spacing(model, prepared.reference)
        if warning:
            print(f"{case.flair}: {warning}", file=sys.stderr)
        result = segment_prepared(model, prepared, device, args.min_lesion_mm3)
        write_image(result.mask, mask_path)
        if prob_path is not None:
            write_image(result.probability, prob_path)
        print(f"{case.case_id}: {result.lesion_volume_ml:.2f} mL in {result.lesion_count} lesion(s) "
              f"at threshold {result.threshold:.2f} -> {mask_path}")
        tracker.update(index + 1, case.case_id)
    return 0
