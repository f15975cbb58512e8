"""A cohort segmented on a Dask cluster: one task per case, resumable, one failure never stops the rest.

The coordinating process (the `wmhda segment --cluster` command) submits a task per unfinished
case and records each result as it arrives (`cohort_log`). A task runs on a worker: it loads the
model once per worker process, segments the case, writes the outputs atomically and returns what
it did; a case's own problem (a bad file) comes back as a failed record, not as an exception, so
the coordinator knows which worker it was and retries it once on another. A worker that dies is
Dask's to handle: its task is rescheduled on another worker. Ctrl-C cancels what is pending;
each output is written in one step, so only complete outputs are ever left.
"""

from __future__ import annotations

import errno
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .cluster import TaskSlots, submit_options, undo_malloc_trim, worker_name
from .cohort_log import Job, ResultsLog, input_stamp, outputs_record, write_summary
from .errors import Cancelled, InputError
from .modelheader import file_sha256
from .progress import ProgressCallback, ProgressTracker

DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_MODELS: dict[tuple[str, str, str], object] = {}  # per worker process: (path, sha256, device) -> model


@dataclass(frozen=True)
class Settings:
    """What, besides the model and the inputs, decides a case's outputs."""

    min_lesion_mm3: float = 0.0
    write_prob: bool = False
    register: str = "auto"
    brain_mask: str = "auto"

    def as_record(self) -> dict:
        return {"min_lesion_mm3": self.min_lesion_mm3, "write_prob": self.write_prob,
                "register": self.register, "brain_mask": self.brain_mask}


def segment_job(model, job: Job, device, min_lesion_mm3: float, register: str = "auto",
                mask_method: str = "auto") -> dict:
    """Segment one case and write its outputs; the figures of its record. Shared by both paths."""
    from .cases import prepare_case
    from .inference import segment_prepared, warn_if_far_spacing
    from .io import write_image

    prepared = prepare_case(job.case, model.preprocess_config, register=register, mask_method=mask_method)
    warning = warn_if_far_spacing(model, prepared.reference)
    if warning:
        print(f"{job.case.flair}: {warning}", file=sys.stderr)
    result = segment_prepared(model, prepared, device, min_lesion_mm3)
    write_image(result.mask, job.mask_path)
    if job.prob_path is not None:
        write_image(result.probability, job.prob_path)
    return {"lesion_volume_ml": round(result.lesion_volume_ml, 4), "lesion_count": result.lesion_count,
            "threshold": round(result.threshold, 4), "t1_placement": prepared.t1_placement,
            "brain_mask": prepared.mask_method}


def _worker_model(model_path: str, model_sha256: str, device_name: str):
    """The model, loaded once per worker process and checked to be the file the run was started with."""
    from .devices import resolve_device
    from .modelfile import load_model

    key = (model_path, model_sha256, device_name)
    if key not in _MODELS:
        if file_sha256(model_path) != model_sha256:
            raise InputError(model_path, "changed since the run started (its SHA-256 differs)")
        device = resolve_device(device_name)
        _MODELS[key] = (load_model(model_path, device), device)
    return _MODELS[key]


def segment_task(model_path: str, model_sha256: str, device_name: str, job: Job, settings: Settings,
                 torch_threads: int) -> dict:
    """Run on a worker: one case, start to finish. Returns its record, failed or done."""
    import torch

    began = time.monotonic()
    record = {"case_id": job.case.case_id, "worker": worker_name(), "model_sha256": model_sha256,
              "settings": settings.as_record()}
    try:
        torch.set_num_threads(torch_threads)
        undo_malloc_trim()
        model, device = _worker_model(model_path, model_sha256, device_name)
        figures = segment_job(model, job, device, settings.min_lesion_mm3, settings.register,
                              settings.brain_mask)
        record.update(status="done", inputs=input_stamp(job.case), outputs=outputs_record(job), **figures)
    except (InputError, OSError) as error:
        disk = getattr(error, "errno", None) in DISK_ERRORS or "No space left" in str(error)
        record.update(status="failed", error=str(error).splitlines()[0], disk_full=disk)
    record["seconds"] = round(time.monotonic() - began, 3)
    return record


SegmentTask = Callable[..., dict]


@dataclass
class CohortResult:
    records: list[dict]           # one per case, in the order of the jobs
    skipped: int = 0              # finished on an earlier run
    failed: list[str] = field(default_factory=list)
    summary: Path | None = None


class _Run:
    """The coordinator's futures: which job each is, and the workers each case was tried on."""

    def __init__(self, client, submit_task: Callable[[Job, list[str] | None], object]):
        self.client, self.submit_task = client, submit_task
        self.tried_on: dict[str, list[str]] = {}
        self.jobs: dict[object, Job] = {}

    def submit(self, job: Job, avoid: str | None = None) -> object:
        """Send a job; a retry goes to any worker but `avoid` where there is another."""
        others = None
        if avoid:  # asks the scheduler: only for the few retries, not for every case of a cohort
            others = [address for address in self.client.scheduler_info()["workers"] if address != avoid]
        future = self.submit_task(job, others or None)
        self.jobs[future] = job
        return future

    def outcome(self, future) -> tuple[Job, dict]:
        job = self.jobs.pop(future)
        if future.status == "error":  # the task itself failed: its worker died more than Dask allows
            error = future.exception()
            record = {"case_id": job.case.case_id, "status": "failed", "worker": "",
                      "error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"}
        else:
            record = future.result()
        tried = self.tried_on.setdefault(job.case.case_id, [])
        tried.append(record["worker"])
        record["tried_on"], record["attempts"] = list(tried), len(tried)
        return job, record


def segment_cohort(client, slots: TaskSlots, jobs: list[Job], model_path: str | Path, out_dir: Path,
                   settings: Settings, device: str = "auto", progress: ProgressCallback | None = None,
                   task: SegmentTask = segment_task) -> CohortResult:
    """Segment every job not finished by an earlier run; record each as it ends; write the summary."""
    from distributed import as_completed

    model_path = str(Path(model_path).resolve())
    model_sha256 = file_sha256(model_path)
    log = ResultsLog(out_dir, model_sha256)
    pending = [job for job in jobs if not log.is_done(job, settings.as_record())]
    skipped = len(jobs) - len(pending)

    def submit_task(job: Job, workers: list[str] | None):
        return client.submit(task, model_path, model_sha256, device, job, settings, slots.torch_threads,
                             key=f"segment-{job.case.case_id}-{time.monotonic_ns()}", pure=False,
                             workers=workers, **submit_options(slots))

    run = _Run(client, submit_task)
    tracker = ProgressTracker("cohort", len(pending), progress)
    futures = as_completed([run.submit(job) for job in pending])
    finished, failed = 0, []
    try:
        for future in futures:
            job, record = run.outcome(future)
            if record.get("disk_full"):
                done = sum(entry.get("status") == "done" for entry in log.records.values())
                raise InputError(out_dir, f"disk full or read-only ({record['error']}); the {done} "
                                          f"cases finished are recorded in {log.path.name}: free space "
                                          f"and run the same command again to go on")
            if record["status"] == "failed" and len(record["tried_on"]) < 2:
                futures.add(run.submit(job, avoid=record.get("worker")))
                continue
            log.append(record)
            finished += 1
            if record["status"] == "failed":
                failed.append(job.case.case_id)
            tracker.update(finished, f"{job.case.case_id} {record['status']}")
    except (KeyboardInterrupt, Cancelled, InputError, OSError):
        client.cancel(list(run.jobs))
        _write_summary_if_possible(out_dir, jobs, log)
        raise
    summary = write_summary(out_dir, [log.records[job.case.case_id] for job in jobs])
    return CohortResult([log.records[job.case.case_id] for job in jobs], skipped, failed, summary)


def _write_summary_if_possible(out_dir: Path, jobs: list[Job], log: ResultsLog) -> None:
    """On a cancel or a full disk: the summary of what is recorded, if the disk still takes it."""
    recorded = [log.records[job.case.case_id] for job in jobs if job.case.case_id in log.records]
    try:
        write_summary(out_dir, recorded)
    except InputError as error:
        print(f"warning: {error}", file=sys.stderr)
