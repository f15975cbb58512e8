"""The markdown report: tables, the `--tune-layers auto` rule and the findings, all from the CSV.

Nothing in it is typed in by hand: rebuilding the report from the same results folder gives the
same text, and a half-finished experiment gets a report of what has finished so far.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..io import atomic_write
from ..modelfile import read_metadata
from ..recommendation import TUNE_LAYERS_BY_SCANS, recommended_tune_layers
from .aggregate import Cell, Summary, number, proposed_table, summarize_rows
from .findings import all_findings
from .grid import FINETUNE, FIRST_LAYERS
from .plots import LAYERS_FIGURE, SCANS_FIGURE, write_plots
from .runner import RESULTS_FILE, STATE_FILE
from .source import SOURCE_MODEL_FILE
from .table import read_rows

REPORT_FILE = "report.md"
SMALL_TEST_SET = 20  # the benchmark recipe: 4-8 test subjects proved too noisy (docs/benchmark.md)


def _f(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _cell_text(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    return _f(cell.dice) + ("" if math.isnan(cell.dice_sd) else f" ± {_f(cell.dice_sd)}")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def source_section(summary: Summary) -> list[str]:
    rows = [[r["test_set"], _f(number(r["dsc_mean"])), _f(number(r["dsc_median"])),
             _f(number(r["dsc_pooled"])), _f(number(r["hd95_mean"]), 1), _f(number(r["avd_mean"]), 1),
             _f(number(r["recall_mean"])), _f(number(r["f1_mean"])), r["n_test"]]
            for r in summary.source_rows()]
    return ["## The source model", ""] + _table(
        ["test set", "mean Dice", "median Dice", "pooled Dice", "HD95 (mm)", "AVD (%)", "lesion recall",
         "lesion F1", "cases"], rows)


def scans_section(summary: Summary) -> list[str]:
    rows = []
    for n in summary.scan_counts():
        best, scratch = summary.best(n), summary.scratch(n)
        rows.append([str(n), _cell_text(scratch), _f(scratch.median) if scratch else "-",
                     _f(scratch.pooled) if scratch else "-", f"{best.tune_layers}", _cell_text(best),
                     _f(best.median), _f(best.pooled), str(best.draws)])
    return ["## Dice on the target test set vs the number of target scans N", "",
            f"![Dice vs N]({SCANS_FIGURE})", "",
            "Mean over draws of each run's mean Dice ± SD over draws; median and pooled Dice are also "
            "averaged over draws. The best K is picked on the test set itself, so the fine-tuned column "
            "is slightly optimistic; the K-by-N table below shows every K.", ""] + _table(
        ["N", "scratch", "scratch median", "scratch pooled", "best K", "fine-tuned (best K)",
         "fine-tuned median", "fine-tuned pooled", "draws"], rows)


def layers_section(summary: Summary, setting: str, title: str) -> list[str]:
    ks = summary.layer_counts(setting)
    counts = summary.scan_counts(setting)
    if not counts:
        return []
    rows = [[str(n)] + [_cell_text(summary.cell(setting, n, k)) for k in ks] for n in counts]
    return [f"## {title}", ""] + _table(["N"] + [f"K={k}" for k in ks], rows)


def recommendation_section(summary: Summary) -> list[str]:
    best = summary.best_layers_by_scans()
    if not best:
        return []
    proposal = proposed_table(best)
    rows = [[str(n), str(k), str(recommended_tune_layers(n)[0])] for n, k in best]
    return ["## The rule for `--tune-layers auto`", "",
            "Best K per N (the K with the highest mean Dice over draws; ties go to the smaller K), "
            "next to what the library's current table gives:", ""] + _table(
        ["N", "measured best K", "current auto K"], rows) + [
        "", "Proposed `TUNE_LAYERS_BY_SCANS` in `recommendation.py` (upper bound of N, K), made "
            "monotone by a running maximum over N so that more scans never tune fewer layers:", "",
        f"    TUNE_LAYERS_BY_SCANS = {proposal!r}", "",
        f"Current value: `{TUNE_LAYERS_BY_SCANS!r}`."
        + (" The measurement agrees with it at every measured N."
           if all(k == recommended_tune_layers(n)[0] for n, k in best) else
           " The measurement differs from it at some N (table above).")]


def findings_section(summary: Summary) -> list[str]:
    lines = ["## Do the paper's findings hold here?", ""]
    for finding in all_findings(summary):
        lines.append(f"- **{finding.title}: {finding.verdict}.** {finding.evidence}")
    return lines


def source_training_seconds(folder: Path) -> float | None:
    path = folder / SOURCE_MODEL_FILE
    if not path.is_file():
        return None
    return number(read_metadata(path).get("training", {}).get("seconds"))


def time_section(summary: Summary, folder: Path) -> list[str]:
    by_setting: dict[str, float] = {}
    for row in summary.rows:
        by_setting[row["setting"]] = by_setting.get(row["setting"], 0.0) + number(row["wall_s"])
    devices = sorted({row["device"] for row in summary.rows})
    rows = [[setting, str(sum(r["setting"] == setting for r in summary.rows)), f"{seconds:.0f}"]
            for setting, seconds in sorted(by_setting.items())]
    total = sum(by_setting.values())
    source = source_training_seconds(folder)
    trained = ("" if source is None else
               f" Training the source model (with its preprocessing) took {source:.0f} s.")
    return ["## Time", "", f"Device(s): {', '.join(devices)}. Run time (training + evaluation, not "
            f"preprocessing): {total:.0f} s in all.{trained}", ""] + _table(
        ["setting", "runs", "seconds"], rows)


def scratch_overrides(config: dict) -> str:
    adapt, scratch = config.get("adapt", {}), config.get("scratch", {})
    changed = [f"{key} = {value}" for key, value in scratch.items() if adapt.get(key) != value]
    return ("the scratch runs change " + ", ".join(changed)) if changed else "no scratch-only changes"


def test_size_note(summary: Summary) -> list[str]:
    sizes = {int(r["n_test"]) for r in summary.rows if r["test_set"] == "target_test"}
    if sizes and min(sizes) < SMALL_TEST_SET:
        return [f"The target test set holds {min(sizes)} cases: with fewer than {SMALL_TEST_SET}, one "
                "case can move a mean Dice a lot, so read the median and pooled Dice too.", ""]
    return []


def header(summary: Summary, state: dict) -> list[str]:
    config = state.get("config", {})
    adapt = config.get("adapt", {})
    return [f"# Experiment `{state.get('name', '?')}`: source vs scratch vs fine-tuned", "",
            config.get("description", ""), "",
            f"{len(summary.rows)} runs finished. N = {config.get('n_scans')}, "
            f"K = {config.get('tune_layers')}, "
            f"draws = {config.get('draws')}, seed = {config.get('seed')}. Fine-tuning recipe: "
            f"{adapt.get('epochs')} epochs (patience {adapt.get('patience')}) on "
            f"{adapt.get('patches_per_case')} fixed patches of {adapt.get('patch_size')} px per scan, "
            f"learning rate {adapt.get('learning_rate')}.",
            "", "\"Scratch\" is the same fine-tuning recipe with K = 15 on a randomly initialised network, "
            "on the same scans, seed and patch set as the fine-tuned runs of that draw, so the comparison "
            f"differs only in the starting weights ({scratch_overrides(config)}).",
            ""] + test_size_note(summary)


def build_report(folder: Path) -> str:
    state_path = folder / STATE_FILE
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
    summary = summarize_rows(read_rows(folder / RESULTS_FILE))
    sections = [header(summary, state), source_section(summary), scans_section(summary),
                layers_section(summary, FINETUNE, "Dice vs the number of tuned last layers K"),
                [f"![Dice vs K]({LAYERS_FIGURE})"],
                layers_section(summary, FIRST_LAYERS, "The alternative: tuning the first K layers"),
                recommendation_section(summary), findings_section(summary), time_section(summary, folder)]
    return "\n".join(line for section in sections for line in section + [""])


def write_report(folder: str | Path) -> list[Path]:
    """report.md and both figures in the results folder; returns their paths."""
    folder = Path(folder)
    text = build_report(folder)
    report = atomic_write(folder / REPORT_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return [report] + write_plots(summarize_rows(read_rows(folder / RESULTS_FILE)), folder)
