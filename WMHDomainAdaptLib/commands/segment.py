"""`wmhda segment`: WMH masks (and probabilities) for one case or a whole dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..brain_extraction import MASK_METHODS
from ..cohort import Settings, segment_cohort, segment_job
from ..cohort_log import Job
from ..dataset import Case, load_cases
from ..devices import resolve_device
from ..errors import InputError
from ..modelfile import load_model
from ..outputs import check_outputs, check_volume_suffix
from ..progress import ProgressTracker
from ..registration import REGISTER_CHOICES
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
    parser.add_argument("--register", choices=REGISTER_CHOICES, default="auto",
                        help="T1 onto FLAIR: auto (register rigidly when the headers' alignment is off "
                             "by over 1 mm or 1 degree), never (headers only), always (default: auto)")
    parser.add_argument("--brain-mask", choices=MASK_METHODS, default="auto",
                        help="without --mask: threshold (fast, for skull-stripped scans), deepbet "
                             "(deepbet's networks, for scans with skull; pip install "
                             "'wmhdomainadapt[heads]'), auto (for now: threshold); a given mask always wins")
    parser.add_argument("--cluster", help="batch on Dask: local:N (N worker processes here), "
                                          "tcp://HOST:PORT (a running scheduler) or a .yaml cluster file; "
                                          "resumable: finished cases are recorded in --out-dir")
    add_device_argument(parser)
    add_progress_argument(parser)


def jobs_from_args(args: argparse.Namespace) -> list[Job]:
    """The cases to segment and their output paths, checked against the inputs."""
    jobs = _jobs(args)
    outputs = [path for job in jobs for path in job.outputs.values()]
    inputs = [path for job in jobs for path in (job.case.t1, job.case.flair, job.case.label, job.case.mask)]
    check_outputs(outputs, inputs + [Path(args.model)])
    for path in outputs:
        check_volume_suffix(path)
    return jobs


def _jobs(args: argparse.Namespace) -> list[Job]:
    if args.cases:
        if not args.out_dir:
            raise InputError("--out-dir", "batch segmentation (--cases) needs --out-dir")
        out_dir = Path(args.out_dir)
        return [Job(case, out_dir / f"{case.case_id}_wmh_pred.nii.gz",
                    out_dir / f"{case.case_id}_wmh_prob.nii.gz" if args.write_prob else None)
                for case in load_cases(args.cases)]
    if args.cluster:
        raise InputError("--cluster", "distributes a batch: give --cases and --out-dir")
    if not (args.t1 and args.flair and args.out):
        raise InputError(None, "give --t1, --flair and --out (or --cases and --out-dir)")
    case = Case(Path(args.flair).name.split(".")[0], Path(args.t1), Path(args.flair),
                mask=Path(args.mask) if args.mask else None)
    return [Job(case, Path(args.out), Path(args.prob) if args.prob else None)]


def _report(case_id: str, figures: dict, mask_path: Path) -> None:
    print(f"{case_id}: {figures['lesion_volume_ml']:.2f} mL in {figures['lesion_count']} lesion(s) "
          f"at threshold {figures['threshold']:.2f} -> {mask_path}")
    if figures.get("t1_placement", "").startswith("registered"):
        print(f"{case_id}: T1 {figures['t1_placement']}")
    if figures.get("brain_mask") == "deepbet":
        print(f"{case_id}: brain mask by deepbet")


def run(args: argparse.Namespace) -> int:
    if args.cluster:
        return run_on_cluster(args)
    jobs = jobs_from_args(args)
    device = resolve_device(args.device)
    model = load_model(args.model, device)
    progress = progress_printer(args)
    tracker = ProgressTracker("cases", len(jobs), progress if len(jobs) > 1 else None)
    for index, job in enumerate(jobs):
        figures = segment_job(model, job, device, args.min_lesion_mm3, args.register, args.brain_mask)
        _report(job.case.case_id, figures, job.mask_path)
        tracker.update(index + 1, job.case.case_id)
    return 0


def run_on_cluster(args: argparse.Namespace) -> int:
    """The batch as one Dask task per case; exit 1 when some cases failed (each reported)."""
    from ..cluster import connect

    jobs = jobs_from_args(args)
    load_model(args.model, "cpu")  # a bad model file is one line here, not one per worker
    with connect(args.cluster, args.threads) as (client, slots):
        settings = Settings(args.min_lesion_mm3, args.write_prob, args.register, args.brain_mask)
        result = segment_cohort(client, slots, jobs, args.model, Path(args.out_dir), settings, args.device,
                                progress_printer(args))
    for record in result.records:
        if record["status"] == "done":
            _report(record["case_id"], record, Path(record["outputs"]["mask"]["path"]))
        else:
            print(f"{record['case_id']}: failed after {record['attempts']} attempt(s): {record['error']}",
                  file=sys.stderr)
    print(f"{len(result.records) - len(result.failed)} of {len(jobs)} cases done "
          f"({result.skipped} from an earlier run), {len(result.failed)} failed -> {result.summary}")
    return 1 if result.failed else 0
