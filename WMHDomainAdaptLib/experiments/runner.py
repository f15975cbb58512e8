"""Working through the run grid: train or adapt, evaluate, append one row, skip what is done.

Every model but the source model is made by the same recipe, `adaptation.fine_tune` on a fixed
patch set of the N scans with held-out-slice validation: fine-tuning the last (or first) K layers
of the source model, and "from scratch" as K = 15 on a randomly initialised network. Scratch and
fine-tuned runs thus differ only in their starting weights and the layers tuned (a fair
comparison). A run's row is written atomically when it ends, so a killed experiment restarts at
the first unfinished run; preprocessing and the source model are cached in the output folder.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..adaptation import AdaptConfig, fine_tune
from ..cases import PreparedCase
from ..decision import Cut, FixedCut
from ..devices import resolve_device
from ..errors import Cancelled, InputError
from ..io import atomic_write
from ..model import seeded_network
from ..modelfile import LoadedModel, file_sha256
from ..progress import CancelToken, ProgressCallback, ProgressTracker
from .config import ExperimentConfig
from .data import load_prepared_set, resolve_dataset
from .evaluation import CASE_METRICS, evaluate_cases, summary_figures
from .grid import FIRST_LAYERS, SCRATCH, RunSpec, build_grid
from .source import obtain_source_model
from .table import KEY_COLUMNS, RunTable

RESULTS_FILE = "results.csv"
CASES_FILE = "cases.csv"
STATE_FILE = "experiment.json"
RESULT_COLUMNS = KEY_COLUMNS + (
    "seed", "test_set", "n_test", "scans", "threshold", "val_dice", "best_epoch", "epochs_run",
    "dsc_mean", "dsc_median", "dsc_pooled", "dsc_sd", "hd95_mean", "hd95_median", "hd95_count",
    "avd_mean", "avd_median", "recall_mean", "recall_median", "precision_mean", "precision_median",
    "f1_mean", "f1_median", "train_s", "eval_s", "wall_s", "device", "cached_features", "finished_utc")
CASE_COLUMNS = KEY_COLUMNS + ("case_id",) + CASE_METRICS


@dataclass
class Workspace:
    """Everything a run needs, loaded once per experiment (and once per worker on a cluster)."""

    config: ExperimentConfig
    device: torch.device
    source: LoadedModel
    pool: list[PreparedCase]
    tests: dict[str, list[PreparedCase]]


@dataclass
class RunRows:
    """What one run adds to the results: its row and one row per test case."""

    key: tuple
    result: dict
    cases: list[dict]


@dataclass
class Trained:
    network: torch.nn.Module
    cut: Cut  # a tuned network's chosen threshold, or the source model's own cut (maybe its rule)
    val_dice: float | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    cached: bool | None = None


def source_model_sha256(config: ExperimentConfig, root: Path) -> str | None:
    """The given source model file's hash. Why: the recipe names the file by its path only, and a
    model replaced at the same path (a new shipped model) makes rows that must not mix with the old."""
    if not config.data.source_model:
        return None
    path = resolve_dataset(root, config.data.source_model)
    return file_sha256(path) if path.is_file() else None  # a missing file is reported on loading


def check_state(out: Path, config: ExperimentConfig, root: Path) -> None:
    """Refuse to mix rows of a different recipe or source model into an existing results folder."""
    path = out / STATE_FILE
    fingerprint = config.recipe_fingerprint()
    source_sha256 = source_model_sha256(config, root)
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8"))
        if recorded.get("recipe_fingerprint") != fingerprint:
            raise InputError(out, "holds results of an experiment with other data or recipes; "
                                  "use a new --out folder (the grid lists alone may change)")
        if recorded.get("source_model_sha256", source_sha256) != source_sha256:  # older folders: no hash
            raise InputError(out, "holds results made with another source model file (its SHA-256 "
                                  "differs); use a new --out folder")
    state = {"name": config.name, "recipe_fingerprint": fingerprint, "source_model_sha256": source_sha256,
             "config": config.to_dict()}
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(state, indent=1, default=str), encoding="utf-8"))


def open_workspace(config: ExperimentConfig, root: Path, out: Path, device: str,
                   progress: ProgressCallback | None, cancel: CancelToken | None) -> Workspace:
    """The source model (trained now if need be) and the preprocessed sets, cached in `out`."""
    torch_device = resolve_device(device)
    source = obtain_source_model(config, root, out, torch_device, progress, cancel)
    preprocessing, cache = source.preprocess_config, out / "cache"
    pool = load_prepared_set(root, config.data.target_pool, preprocessing, cache, "target_pool",
                             progress, cancel)
    named = {"target_test": config.data.target_test, **config.data.reference_tests}
    tests = {name: load_prepared_set(root, location, preprocessing, cache, name, progress, cancel,
                                     limit=config.max_test_cases)
             for name, location in named.items()}
    return Workspace(config, torch_device, source, pool, tests)


def open_tables(out: Path) -> tuple[RunTable, RunTable]:
    return RunTable(out / RESULTS_FILE, RESULT_COLUMNS), RunTable(out / CASES_FILE, CASE_COLUMNS)


def scratch_network(source: LoadedModel, seed: int) -> torch.nn.Module:
    """A randomly initialised network of the source's architecture, to go through the same recipe."""
    return seeded_network(source.network.architecture, seed)


def train_run(space: Workspace, spec: RunSpec, cancel: CancelToken | None) -> Trained:
    if spec.n_scans == 0:
        return Trained(space.source.network, space.source.cut)
    scans = [space.pool[i] for i in spec.scan_indices]
    recipe: AdaptConfig = space.config.scratch if spec.setting == SCRATCH else space.config.adapt
    recipe = recipe.replace(seed=spec.seed)
    start = scratch_network(space.source, spec.seed) if spec.setting == SCRATCH else space.source.network
    network, result, threshold, cached = fine_tune(start, space.source.input_spec, scans, spec.tune_layers,
                                                   recipe, space.device, cancel=cancel,
                                                   tune_first=spec.setting == FIRST_LAYERS)
    if result.interrupted:
        raise Cancelled(f"{spec.describe()} interrupted; it reruns on the next start")
    return Trained(network, FixedCut(threshold), result.best_val_dice, result.best_epoch, result.epochs_run,
                   cached)


def measure_run(space: Workspace, spec: RunSpec, cancel: CancelToken | None) -> RunRows:
    """Train (or adapt) one run and evaluate it on its test set: its rows, not yet written."""
    began = time.monotonic()
    trained = train_run(space, spec, cancel)
    train_s = time.monotonic() - began
    case_rows = evaluate_cases(trained.network, space.source.input_spec, trained.cut,
                               space.tests[spec.test_set], space.device, space.source.flair_of, cancel)
    key = dict(zip(KEY_COLUMNS, spec.key))
    row = {**key, "seed": spec.seed, "test_set": spec.test_set, "n_test": len(case_rows),
           "scans": ";".join(space.pool[i].case_id for i in spec.scan_indices),
           "threshold": trained.cut.fixed, "val_dice": trained.val_dice, "best_epoch": trained.best_epoch,
           "epochs_run": trained.epochs_run, **summary_figures(case_rows), "train_s": round(train_s, 2),
           "eval_s": round(time.monotonic() - began - train_s, 2),
           "wall_s": round(time.monotonic() - began, 2), "device": str(space.device),
           "cached_features": trained.cached,
           "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    return RunRows(spec.key, row, [{**key, **case} for case in case_rows])


def record_run(tables: tuple[RunTable, RunTable], rows: RunRows) -> None:
    """Write a run's rows, cases first: a run counts as done once its row is in the results."""
    results, cases = tables
    cases.replace_run(rows.key, rows.cases)
    results.replace_run(rows.key, [rows.result])


def pending_runs(config: ExperimentConfig, out: Path, pool_size: int) -> tuple[list[RunSpec], int]:
    """The runs of the grid not finished yet, and the grid's size."""
    grid = build_grid(config, pool_size)
    finished = open_tables(out)[0].keys()
    return [spec for spec in grid if spec.key not in finished], len(grid)


def prepare_experiment(config: ExperimentConfig, root: Path, out: Path, device: str,
                       progress: ProgressCallback | None, cancel: CancelToken | None) -> Workspace:
    out.mkdir(parents=True, exist_ok=True)
    check_state(out, config, root)
    return open_workspace(config, root, out, device, progress, cancel)


def run_experiment(config: ExperimentConfig, root: str | Path, out: str | Path, device: str = "auto",
                   progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> Path:
    """Run every unfinished run of the grid; returns the results CSV. Safe to call again."""
    out = Path(out)
    space = prepare_experiment(config, Path(root), out, device, progress, cancel)
    pending, grid_size = pending_runs(config, out, len(space.pool))
    tracker = ProgressTracker("runs", len(pending), progress, cancel)
    tables = open_tables(out)
    for index, spec in enumerate(pending):
        record_run(tables, measure_run(space, spec, cancel))
        done = grid_size - len(pending) + index + 1
        tracker.update(index + 1, f"{spec.describe()} ({done}/{grid_size} runs in the grid)")
    return out / RESULTS_FILE
