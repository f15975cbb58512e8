"""`wmhda calibrate`: fit a model's per-scan threshold rule on labelled scans (`scan_threshold.py`).

The weights are not touched. The calibrated model is a new file that records the rule, the
scans it was fitted on, the in-sample mean Dice with and without it, and its parent's hash. Each
scan is reduced to its Dice curve and its lesion contrast as soon as it is segmented, so
hundreds of scans fit in little memory.
"""

from __future__ import annotations

import argparse
import sys

from ..cases import prepare_case
from ..dataset import load_datasets
from ..devices import resolve_device
from ..errors import InputError
from ..inference import check_channels, predict_probability
from ..modelfile import build_metadata, file_sha256, load_model, save_model
from ..modelheader import MODEL_SUFFIX
from ..outputs import check_outputs, check_suffix
from ..progress import ProgressTracker
from ..scan_threshold import ScanThreshold, fit_scan_threshold, scan_evidence
from ._common import add_device_argument, add_progress_argument, progress_printer, unit_interval

NAME = "calibrate"
HELP = ("fit a per-scan threshold rule (from each scan's lesion contrast) on labelled scans and "
        "write it into a new model file")
MIN_SCANS = 10  # two parameters fitted on fewer scans would follow their noise
DEFAULTS = ScanThreshold(0.0, 0.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model file to calibrate (.safetensors)")
    parser.add_argument("--cases", required=True, nargs="+",
                        help="labelled scans of the model's domain, none it was trained or stopped on: "
                             "manifest CSVs or folders")
    parser.add_argument("--out", required=True, help="calibrated model file to write (a new file)")
    parser.add_argument("--core-probability", type=unit_interval(), default=DEFAULTS.core_probability,
                        help="a scan's lesion contrast is the mean FLAIR z-score of the voxels at "
                             "least this probable (default: %(default)s)")
    add_device_argument(parser)
    add_progress_argument(parser)


def run(args: argparse.Namespace) -> int:
    out = check_suffix(args.out, MODEL_SUFFIX)
    check_outputs([out], [args.model])
    if out.exists():
        raise InputError(out, "model file already exists; choose another name")
    device = resolve_device(args.device)
    model = load_model(args.model, device)
    cases = load_datasets(args.cases)
    tracker = ProgressTracker("calibrate", len(cases), progress_printer(args))
    evidence, used = [], []
    for index, case in enumerate(cases):
        prepared = prepare_case(case, model.preprocess_config, need_label=True)
        check_channels(model, prepared)
        lesion = prepared.label == 1
        if lesion.any():
            probability = predict_probability(model.network, model.input_spec, prepared, device)
            evidence.append(scan_evidence(probability, model.flair_of(prepared.image), prepared.label,
                                          args.core_probability, DEFAULTS.min_core_voxels))
            used.append(case.case_id)
        else:
            print(f"{case.label}: no WMH voxel, so no Dice to fit on; skipped", file=sys.stderr)
        tracker.update(index + 1, case.case_id)
    if len(evidence) < MIN_SCANS:
        raise InputError(args.cases[0], f"{len(evidence)} labelled scan(s) with lesions; the rule needs "
                                        f"at least {MIN_SCANS}")
    fit = fit_scan_threshold(evidence, model.threshold)
    metadata = build_metadata(model.network, model.preprocess_config, model.threshold,
                              model.metadata["training"], file_sha256(model.path))
    metadata["scan_threshold"] = fit.rule.to_dict()
    metadata["calibration"] = {"n_cases": fit.scans, "case_ids": used,
                               "mean_dice_fixed_threshold": round(fit.mean_dice_fixed, 4),
                               "mean_dice_scan_threshold": round(fit.mean_dice_rule, 4)}
    save_model(out, model.network.cpu(), metadata)
    rule = fit.rule
    print(f"threshold = {rule.intercept:+.2f} + {rule.slope:.2f} x lesion contrast, within "
          f"[{rule.low}, {rule.high}]; on the {fit.scans} scans (in sample): mean Dice "
          f"{fit.mean_dice_fixed:.4f} at the fixed {model.threshold:.2f}, {fit.mean_dice_rule:.4f} "
          f"with the rule -> {out}")
    return 0
