"""Headless batch runs of the WMHDomainAdapt module: segment or adapt over a folder or manifest.

    Slicer --no-splash --no-main-window --python-script wmh_batch.py segment \\
        --model M.safetensors --cases CASES --out-dir OUT [--device auto|cuda|cpu] [--probability]
    Slicer --no-splash --no-main-window --python-script wmh_batch.py adapt \\
        --model SOURCE.safetensors --cases CASES --out NEW.safetensors [--tune-layers auto|K]

CASES is a manifest CSV (id,t1,flair,label,mask) or a folder of case folders (see
WMHDomainAdaptLib.dataset). Volumes are read through Slicer's storage nodes and go through exactly
the module's Logic code path (world geometry, worker process, FLAIR-grid results), so a batch run
gives what the GUI would. Segment writes per case `<id>_wmh.seg.nrrd` (open it in Slicer),
`<id>_wmh_pred.nii.gz` (the mask on the FLAIR grid, the name `wmhda evaluate` expects), optionally
`<id>_wmh_prob.nii.gz`, and `wmh_volumes.csv`.

Exit codes: 0 success; 1 some cases failed (the others are written); 2 bad arguments or input;
130 cancelled. Without Slicer, the same work runs with `wmhda segment|adapt`.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130


def _make_importable() -> None:
    """The module folder (WMHDomainAdaptLogicLib) and the library beside it, installed or in a checkout."""
    module_dir = Path(__file__).resolve().parent.parent
    for folder in (module_dir, module_dir.parent):
        if (folder / "WMHDomainAdaptLogicLib").is_dir() or (folder / "WMHDomainAdaptLib").is_dir():
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))


def tune_layers_value(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be auto or a number of layers, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be auto or at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wmh_batch.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("segment", "segment WMH in every case"),
                            ("adapt", "adapt a model to the protocol of labelled cases")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--model", required=True, type=Path, help="model file (.safetensors)")
        sub.add_argument("--cases", required=True, type=Path, help="manifest CSV or folder of cases")
        sub.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
        sub.add_argument("--python", default=None,
                         help="interpreter for the worker (default: PythonSlicer, else this one)")
    segment = commands.choices["segment"]
    segment.add_argument("--out-dir", required=True, type=Path, help="folder for the results")
    segment.add_argument("--probability", action="store_true", help="also write probability maps")
    adapt = commands.choices["adapt"]
    adapt.add_argument("--out", required=True, type=Path, help="the new model file (must not exist)")
    adapt.add_argument("--tune-layers", default="auto", type=tune_layers_value,
                       help="number of last layers to fine-tune, or auto (from the number of cases)")
    adapt.add_argument("--worker-args", nargs=argparse.REMAINDER, default=[],
                       help="further `wmhda adapt` options (e.g. --epochs 10), given last")
    return parser


@dataclass
class CaseOutcome:
    case_id: str
    volume_ml: float | None = None
    lesion_count: int | None = None
    error: str | None = None


def segment_case(scene, case, args, python: str) -> CaseOutcome:
    """One case through the module's Segment path; the scene is left as it was found."""
    from WMHDomainAdaptLogicLib.operations import segment_volumes
    from WMHDomainAdaptLogicLib.segmentation import segment_to_flair_labelmap, write_segmentation
    from WMHDomainAdaptLogicLib.volumes import load_volume, volume_to_image

    from WMHDomainAdaptLib.io import image_like, write_image

    before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    try:
        t1 = load_volume(scene, case.t1, f"{case.case_id} T1")
        flair = load_volume(scene, case.flair, f"{case.case_id} FLAIR")
        result = segment_volumes(scene, t1, flair, args.model, python, args.device, args.probability)
        out = args.out_dir
        write_segmentation(result.segmentation_node, out / f"{case.case_id}_wmh.seg.nrrd")
        flair_image = volume_to_image(flair)
        mask = segment_to_flair_labelmap(scene, result.segmentation_node, flair)
        write_image(image_like(mask, flair_image), out / f"{case.case_id}_wmh_pred.nii.gz")
        if result.probability_node is not None:
            write_image(volume_to_image(result.probability_node), out / f"{case.case_id}_wmh_prob.nii.gz")
        return CaseOutcome(case.case_id, result.statistics.volume_ml, result.statistics.count)
    except (ValueError, RuntimeError, OSError) as error:
        return CaseOutcome(case.case_id, error=str(error))
    finally:
        for index in reversed(range(scene.GetNumberOfNodes())):
            node = scene.GetNthNode(index)
            if node is not None and node.GetID() not in before:
                scene.RemoveNode(node)


def write_summary(outcomes: list[CaseOutcome], path: Path) -> None:
    from WMHDomainAdaptLib.io import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "wmh_volume_ml", "lesion_count", "error"])
            for o in outcomes:
                writer.writerow([o.case_id, "" if o.volume_ml is None else f"{o.volume_ml:.3f}",
                                 "" if o.lesion_count is None else o.lesion_count, o.error or ""])

    atomic_write(path, write)


def run_segment(args, scene, python: str) -> int:
    from WMHDomainAdaptLogicLib.operations import check_model

    from WMHDomainAdaptLib.dataset import load_cases

    check_model(args.model)
    cases = load_cases(args.cases)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for index, case in enumerate(cases, start=1):
        outcome = segment_case(scene, case, args, python)
        outcomes.append(outcome)
        status = (f"error: {outcome.error}" if outcome.error
                  else f"{outcome.volume_ml:.2f} mL in {outcome.lesion_count} lesion(s)")
        print(f"[{index}/{len(cases)}] {case.case_id}: {status}", flush=True)
    write_summary(outcomes, args.out_dir / "wmh_volumes.csv")
    failed = [o.case_id for o in outcomes if o.error]
    if failed:
        print(f"wmh_batch segment: {len(failed)} of {len(cases)} case(s) failed: {', '.join(failed)}",
              file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_OK


def run_adapt(args, python: str) -> int:
    import tempfile

    from WMHDomainAdaptLogicLib.adaptation_set import AdaptationSet
    from WMHDomainAdaptLogicLib.operations import adapt_model

    from WMHDomainAdaptLib.dataset import load_cases, write_manifest

    if args.out.exists():
        raise ValueError(f"{args.out}: file already exists; choose a new name (models are never overwritten)")
    cases = load_cases(args.cases)
    with tempfile.TemporaryDirectory(prefix="wmhda-batch-") as folder:
        adaptation_set = AdaptationSet(folder)
        write_manifest(cases, adaptation_set.manifest)
        path = adapt_model(adaptation_set, args.model, None, python, args.tune_layers, args.device,
                           args.worker_args, on_line=lambda line: print(line, flush=True), out=args.out)
    print(f"adapted model written: {path}")
    return EXIT_OK


def main(argv: list[str] | None = None, scene=None) -> int:
    """Parse, run, and turn every failure into a message and an exit code (never a traceback)."""
    _make_importable()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return EXIT_OK if exit_.code == 0 else EXIT_BAD_INPUT
    from WMHDomainAdaptLogicLib.operations import WorkerFailed
    from WMHDomainAdaptLogicLib.worker import default_python

    python = args.python or default_python()
    try:
        if args.command == "adapt":
            return run_adapt(args, python)
        holder = None
        if scene is None:
            scene, holder = slicer_scene()
        return run_segment(args, scene, python)
    except WorkerFailed as error:
        print(f"wmh_batch {args.command}: error: {error}", file=sys.stderr)
        return EXIT_CANCELLED if error.cancelled else EXIT_SOME_FAILED
    except (ValueError, OSError) as error:
        print(f"wmh_batch {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"wmh_batch {args.command}: cancelled", file=sys.stderr)
        return EXIT_CANCELLED


def slicer_scene():
    """Slicer's scene when run by Slicer, else a standalone one (returned with its keeper)."""
    import slicer

    if getattr(slicer, "mrmlScene", None) is not None:
        return slicer.mrmlScene, None
    from WMHDomainAdaptLogicLib.scene import standalone_scene

    holder = standalone_scene()
    return holder.scene, holder


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
