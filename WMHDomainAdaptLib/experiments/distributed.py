"""The study's grid on a Dask cluster: each run (source, scratch, fine-tune at N, K, draw) one task.

The coordinator does what must happen once, on the shared output folder: it checks the folder's
recipe, trains the source model if none is given and preprocesses every set into the cache. Each
worker then opens that workspace once (from the cache: seconds), trains and evaluates the runs it
is given and returns their rows; only the coordinator writes the results tables, a run at a time,
so resuming works as on one machine (a finished run is never redone). On a real cluster the
output folder must be on a file system all workers see.
"""

from __future__ import annotations

from pathlib import Path

from ..cluster import TaskSlots, submit_options, undo_malloc_trim
from ..modelheader import file_sha256
from ..progress import ProgressCallback, ProgressTracker
from .config import ExperimentConfig
from .data import resolve_dataset
from .grid import RunSpec
from .runner import (
    RESULTS_FILE,
    RunRows,
    Workspace,
    measure_run,
    open_tables,
    open_workspace,
    pending_runs,
    prepare_experiment,
    record_run,
)
from .source import SOURCE_MODEL_FILE

_WORKSPACES: dict[tuple, Workspace] = {}  # per worker process


def _source_file(config: ExperimentConfig, root: Path, out: Path) -> Path:
    if config.data.source_model:
        return resolve_dataset(root, config.data.source_model)
    return out / SOURCE_MODEL_FILE


def run_task(config: ExperimentConfig, root: Path, out: Path, device: str, spec: RunSpec,
             torch_threads: int) -> RunRows:
    """Run on a worker: one run of the grid, its rows returned to the coordinator."""
    import torch

    torch.set_num_threads(torch_threads)
    undo_malloc_trim()
    key = (str(out), config.recipe_fingerprint(), device, file_sha256(_source_file(config, root, out)))
    if key not in _WORKSPACES:
        _WORKSPACES.clear()  # one experiment's data at a time per worker
        _WORKSPACES[key] = open_workspace(config, root, out, device, None, None)
    return measure_run(_WORKSPACES[key], spec, None)


def run_experiment_on_cluster(client, slots: TaskSlots, config: ExperimentConfig, root: str | Path,
                              out: str | Path, device: str = "auto",
                              progress: ProgressCallback | None = None) -> Path:
    """Every unfinished run of the grid as a task; rows recorded as runs end. Safe to call again."""
    from distributed import as_completed

    root, out = Path(root).resolve(), Path(out).resolve()
    space = prepare_experiment(config, root, out, device, progress, None)
    pending, grid_size = pending_runs(config, out, len(space.pool))
    del space  # the workers hold their own copies
    futures = {client.submit(run_task, config, root, out, device, spec, slots.torch_threads,
                             key=f"run-{'-'.join(map(str, spec.key))}", pure=False,
                             **submit_options(slots)): spec for spec in pending}
    tracker = ProgressTracker("runs", len(pending), progress)
    tables = open_tables(out)
    try:
        for index, future in enumerate(as_completed(futures)):
            record_run(tables, future.result())
            tracker.update(index + 1, f"{futures[future].describe()} ({grid_size - len(pending) + index + 1}"
                                      f"/{grid_size} runs in the grid)")
    except BaseException:
        client.cancel(list(futures))
        raise
    return out / RESULTS_FILE
