"""`wmhda demo`: the whole story on a small synthetic demo set, in a few minutes on a CPU.

1. make a small two-domain demo set (source and new-protocol "target" scans with labels);
2. segment the source and target test scans with the shipped source model and score them;
3. adapt the source model with two labelled target scans (the clinician's "Adapt model");
4. segment the target test scans with the adapted model and score them.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import SimpleITK as sitk

from ..cases import prepare_cases
from ..dataset import load_cases
from ..devices import resolve_device
from ..errors import InputError
from ..inference import segment_prepared
from ..io import atomic_write, write_image
from ..metrics import evaluate_arrays, summarize
from ..modelfile import load_model
from ..recommendation import resolve_tune_layers
from ._common import add_device_argument, at_least, progress_printer

NAME = "demo"
HELP = "run the full story on generated demo data: source model, adapt with 2 scans, adapted model"

SHIPPED_MODEL = (Path(__file__).resolve().parents[2] / "Resources" / "Models"
                 / "wmh_source_synthetic.safetensors")
DEMO_SIZES = {"source_train": 0, "source_val": 0, "source_test": 2, "target_pool": 2, "target_test": 4,
              "mild_test": 0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo", help="output folder (default: demo)")
    parser.add_argument("--model", default=str(SHIPPED_MODEL),
                        help="source model (default: the shipped one)")
    parser.add_argument("--adapt-scans", type=at_least(1), default=2,
                        help="labelled target scans to adapt on")
    parser.add_argument("--tune-layers", default="auto", help="K, or auto (default)")
    parser.add_argument("--seed", type=at_least(0), default=7, help="seed of the demo data (default 7)")
    add_device_argument(parser)


def demo_data(folder: Path, seed: int, progress) -> dict[str, Path]:
    """The demo splits' manifests, generated once and reused by later runs."""
    manifests = {name: folder / name / "manifest.csv" for name, n in DEMO_SIZES.items() if n}
    if not all(path.exists() for path in manifests.values()):
        from ..synth import write_preset  # needs the `synth` extra (nilearn, scipy)
        write_preset(folder, "demo", seed=seed, sizes=DEMO_SIZES, progress=progress)
    return manifests


def score(model, cases, device, out_dir: Path) -> list[dict]:
    """Segment prepared cases, write the masks, return per-case metrics."""
    rows = []
    for case in cases:
        result = segment_prepared(model, case, device)
        write_image(result.mask, out_dir / f"{case.case_id}_wmh_pred.nii.gz")
        metrics = evaluate_arrays(sitk.GetArrayViewFromImage(result.mask), case.label,
                                  case.spacing_xyz, case.case_id)
        rows.append({"case": case.case_id, **metrics})
    return rows


def print_rows(title: str, rows: list[dict]) -> dict:
    summary = summarize(rows)
    print(f"\n{title}")
    print(f"  {'case':<18}{'DSC':>7}{'HD95 mm':>9}{'AVD %':>8}{'recall':>8}{'F1':>7}"
          f"{'ref mL':>8}{'pred mL':>9}")
    for row in rows:
        print(f"  {row['case']:<18}{row['dsc']:7.3f}{row['hd95']:9.2f}{row['avd']:8.1f}"
              f"{row['recall']:8.3f}{row['f1']:7.3f}{row['ref_ml']:8.2f}{row['pred_ml']:9.2f}")
    print(f"  {'mean':<18}{summary['dsc']['mean']:7.3f}{summary['hd95']['mean']:9.2f}"
          f"{summary['avd']['mean']:8.1f}{summary['recall']['mean']:8.3f}{summary['f1']['mean']:7.3f}")
    return summary


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    model_path = Path(args.model)
    if not model_path.is_file():
        raise InputError(model_path, "source model not found (train one with `wmhda train`, or pass --model)")
    out = Path(args.out)
    progress = progress_printer(args)
    device = resolve_device(args.device)
    manifests = demo_data(out / "data", args.seed, progress)
    source = load_model(model_path, device)
    test = {name: prepare_cases(load_cases(manifests[name]), source.preprocess_config, True)
            for name in ("source_test", "target_test")}
    results = []
    predictions = out / "predictions"
    summary = print_rows(f"Source model on the source protocol ({model_path.name})",
                         score(source, test["source_test"], device, predictions / "source_on_source"))
    results.append(("source model", "source_test", summary))
    summary = print_rows("Source model on the new (target) protocol",
                         score(source, test["target_test"], device, predictions / "source_on_target"))
    results.append(("source model", "target_test", summary))

    from ..adaptation import adapt
    adapt_cases = load_cases(manifests["target_pool"])[: args.adapt_scans]
    tune_layers, reason = resolve_tune_layers(args.tune_layers, len(adapt_cases))
    print(f"\nAdapting with {len(adapt_cases)} labelled target scans: {reason}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    adapted_path = out / "models" / f"adapted_N{len(adapt_cases)}_K{tune_layers}_{stamp}.safetensors"
    adapted_at = time.monotonic()
    result = adapt(model_path, adapt_cases, adapted_path, tune_layers, args.device, progress=progress)
    print(f"adapted model written to {result.path} in {time.monotonic() - adapted_at:.0f} s")
    adapted = load_model(result.path, device)
    summary = print_rows("Adapted model on the new (target) protocol",
                         score(adapted, test["target_test"], device, predictions / "adapted_on_target"))
    results.append(("adapted model", "target_test", summary))
    write_summary(out / "demo_results.csv", results)
    print("\nSummary (mean over test cases)")
    for model_name, split, figures in results:
        print(f"  {model_name:<14} on {split:<12} DSC {figures['dsc']['mean']:.3f}  "
              f"pooled DSC {figures['pooled_dsc']['mean']:.3f}  lesion F1 {figures['f1']['mean']:.3f}")
    print(f"done in {time.monotonic() - began:.0f} s; results in {out}")
    return 0


def write_summary(path: Path, results) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["model", "split", "dsc_mean", "dsc_pooled", "hd95_mean", "avd_mean",
                             "recall_mean", "f1_mean", "cases"])
            for model_name, split, figures in results:
                means = [f"{figures[k]['mean']:.4f}"
                         for k in ("dsc", "pooled_dsc", "hd95", "avd", "recall", "f1")]
                writer.writerow([model_name, split, *means, figures["dsc"]["count"]])
    atomic_write(path, write)
