"""Segment and Adapt, end to end: nodes -> files -> worker -> nodes / registered model.

Each operation is split into `prepare_*` (checks input, writes the worker's files, builds the
command), the worker run, and `finish_*` (reads results back). The Slicer widget runs the worker
without blocking and calls `finish_*` from its timer; scripts, the batch runner and tests call the
blocking `segment_volumes` / `adapt_model`, which go through exactly the same steps.

Worker inputs are written in world coordinates (parent transforms applied); results come back on
the FLAIR's voxel grid and are placed exactly where the FLAIR is.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk

from WMHDomainAdaptLib import __version__
from WMHDomainAdaptLib.io import read_image, write_image
from WMHDomainAdaptLib.lesions import LesionStatistics, lesion_statistics
from WMHDomainAdaptLib.modelheader import file_sha256, read_header_metadata
from WMHDomainAdaptLib.recommendation import recommended_tune_layers

from .adaptation_set import AdaptationSet, check_overlap
from .display import show_probability_overlay
from .registry import ModelRegistry, publish_model
from .segmentation import (
    PROBABILITY_REFERENCE,
    Provenance,
    check_belongs_to,
    create_wmh_segmentation,
    fill_wmh_segmentation,
    keep_previous_wmh,
    place_in_study_of,
    read_provenance,
    record_provenance,
)
from .volumes import same_grid_as_node, update_volume_on_grid_of, volume_to_image
from .worker import (
    WorkerProcess,
    adapt_command,
    failure_message,
    is_out_of_memory,
    segment_command,
    warnings_in,
    worker_environment,
)

_THRESHOLD = re.compile(r"at threshold (\d+(?:\.\d+)?)")  # `wmhda segment`'s line per scan


class WorkerFailed(RuntimeError):
    """The worker ended without a result; `str()` is the message for the user.

    `cancelled` says the user stopped it (no error to show), `out_of_memory` that the GPU ran out.
    """

    def __init__(self, message: str, log: Sequence[str], out_of_memory: bool, workdir: Path | None,
                 cancelled: bool = False):
        super().__init__(message)
        self.log, self.out_of_memory, self.workdir = list(log), out_of_memory, workdir
        self.cancelled = cancelled


def check_model(model_path: str | Path | None) -> Path:
    """A quick check of the chosen model file (the worker validates the weights fully)."""
    if not model_path:
        raise ValueError("select a model")
    read_header_metadata(model_path)
    return Path(model_path)


def new_workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"wmhda-{prefix}-"))


def check_worker_result(worker: WorkerProcess, workdir: Path | None = None) -> None:
    """Raise `WorkerFailed` unless the worker exited 0."""
    if worker.returncode == 0 and not worker.cancelled:
        return
    cancelled = worker.cancelled or worker.returncode == 130
    raise WorkerFailed(failure_message(worker.returncode, worker.log, worker.cancelled), worker.log,
                       is_out_of_memory(worker.log), workdir, cancelled)


@dataclass
class SegmentJob:
    flair_node: object
    workdir: Path
    command: list[str]
    env: dict
    mask_path: Path
    probability_path: Path | None
    model: Path
    model_sha256: str  # taken when the run starts: what the worker read, even if the file changes later


@dataclass
class SegmentResult:
    segmentation_node: object
    probability_node: object | None
    statistics: LesionStatistics
    warnings: list[str] = field(default_factory=list)  # the worker's, e.g. a spacing far from training
    provenance: Provenance | None = None


def prepare_segment(t1_node, flair_node, model_path, python: str, workdir: Path, device: str = "auto",
                    probability: bool = False) -> SegmentJob:
    """Check the input and write T1 and FLAIR (world geometry) for the worker."""
    if t1_node is None:
        raise ValueError("select a T1 volume")
    if flair_node is None:
        raise ValueError("select a FLAIR volume")
    if t1_node is flair_node:
        raise ValueError("T1 and FLAIR are the same volume; select two different scans")
    model = check_model(model_path)
    t1, flair = volume_to_image(t1_node), volume_to_image(flair_node)
    check_overlap(t1, flair)
    workdir.mkdir(parents=True, exist_ok=True)
    t1_path = write_image(t1, workdir / "t1.nrrd", compress=False)
    flair_path = write_image(flair, workdir / "flair.nrrd", compress=False)
    mask_path = workdir / "wmh_mask.nrrd"
    probability_path = workdir / "wmh_probability.nrrd" if probability else None
    command = segment_command(python, model, t1_path, flair_path, mask_path, probability_path, device)
    return SegmentJob(flair_node, workdir, command, worker_environment(device), mask_path, probability_path,
                      model, file_sha256(model))


def provenance_of(job: SegmentJob, log: Sequence[str], now: dt.datetime | None = None) -> Provenance:
    """What made this result: the model, its hash, the threshold the worker reported, when, which library."""
    found = [match.group(1) for match in map(_THRESHOLD.search, log) if match]
    created = (now or dt.datetime.now()).isoformat(timespec="seconds")
    return Provenance(job.model.name, job.model_sha256, found[-1] if found else "", created, __version__)


def _read_on_flair_grid(path: Path, flair_node, role: str) -> sitk.Image:
    image = read_image(path, role)
    if not same_grid_as_node(image, flair_node):
        raise RuntimeError(f"the worker's {role} is not on the FLAIR grid; nothing was changed")
    return image


def finish_segment(scene, job: SegmentJob, segmentation_node=None, probability_node=None,
                   log: Sequence[str] = ()) -> SegmentResult:
    """Put the worker's mask (and probability) into nodes on the FLAIR grid; `log` is its output.

    Without `segmentation_node` the result is a new segmentation. With one (the user chose to
    replace it) it must be this FLAIR's, and its current WMH segment is kept, renamed and hidden,
    beside the new one. The FLAIR's probability map node is reused on re-runs.
    """
    if job.flair_node.GetScene() is not scene:
        raise RuntimeError(f"the FLAIR '{job.flair_node.GetName()}' is no longer in the scene; "
                           "the result was dropped")
    mask_image = _read_on_flair_grid(job.mask_path, job.flair_node, "WMH mask")
    mask = sitk.GetArrayFromImage(mask_image)
    provenance = provenance_of(job, log)
    if segmentation_node is None:
        segmentation_node = create_wmh_segmentation(scene, mask, job.flair_node)
    else:
        check_belongs_to(segmentation_node, job.flair_node)
        previous = read_provenance(segmentation_node)
        keep_previous_wmh(segmentation_node, previous.created if previous else "before " + provenance.created)
        fill_wmh_segmentation(scene, segmentation_node, mask, job.flair_node)
        place_in_study_of(scene, segmentation_node, job.flair_node)
    record_provenance(segmentation_node, provenance, job.flair_node)
    if job.probability_path is not None:
        probability_node = _write_probability(scene, job, probability_node)
    return SegmentResult(segmentation_node, probability_node,
                         lesion_statistics(mask, mask_image.GetSpacing()), warnings_in(log), provenance)


def _write_probability(scene, job: SegmentJob, probability_node=None):
    """The probability map into `probability_node`, or the FLAIR's from an earlier run, or a new node."""
    probability = sitk.GetArrayFromImage(_read_on_flair_grid(job.probability_path, job.flair_node,
                                                             "WMH probability"))
    probability_node = probability_node or job.flair_node.GetNodeReference(PROBABILITY_REFERENCE)
    if probability_node is None:
        name = scene.GenerateUniqueName(f"{job.flair_node.GetName()} WMH probability")
        probability_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        job.flair_node.SetNodeReferenceID(PROBABILITY_REFERENCE, probability_node.GetID())
    update_volume_on_grid_of(probability_node, probability, job.flair_node)
    show_probability_overlay(scene, probability_node, job.flair_node)
    place_in_study_of(scene, probability_node, job.flair_node)
    return probability_node


def segment_volumes(scene, t1_node, flair_node, model_path, python: str, device: str = "auto",
                    probability: bool = False, segmentation_node=None, probability_node=None,
                    on_line: Callable[[str], None] | None = None, keep_files: bool = False) -> SegmentResult:
    """Blocking Segment: the same steps the widget runs in the background."""
    return run_blocking(
        "segment",
        lambda workdir: prepare_segment(t1_node, flair_node, model_path, python, workdir, device,
                                        probability),
        lambda job, log: finish_segment(scene, job, segmentation_node, probability_node, log),
        on_line, keep_files)


def run_blocking(kind: str, prepare: Callable, finish: Callable,
                 on_line: Callable[[str], None] | None, keep_files: bool):
    """prepare(workdir) -> job; run the job's worker to the end; finish(job, its output); clean up."""
    workdir = new_workdir(kind)
    try:
        job = prepare(workdir)
        worker = WorkerProcess(job.command, job.env, cwd=workdir)
        worker.wait(on_line)
        check_worker_result(worker, workdir if keep_files else None)
        return finish(job, worker.log)
    finally:
        if not keep_files:
            shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class AdaptJob:
    parent: Path
    workdir: Path
    output: Path
    command: list[str]
    env: dict
    n_cases: int
    extra: list[str] = field(default_factory=list)


def prepare_adapt(adaptation_set: AdaptationSet, model_path, python: str, workdir: Path,
                  tune_layers: int | str = "auto", device: str = "auto",
                  extra: Sequence[str] = ()) -> AdaptJob:
    """Check the set and the parent model; the new model is written into `workdir` first."""
    n_cases = len(adaptation_set)
    if n_cases == 0:
        raise ValueError("the adaptation set is empty (N = 0): correct at least one segmentation and "
                         "add it to the set")
    parent = check_model(model_path)
    workdir.mkdir(parents=True, exist_ok=True)
    output = workdir / "adapted.safetensors"
    command = adapt_command(python, parent, adaptation_set.manifest, output, tune_layers, device, extra)
    return AdaptJob(parent, workdir, output, command, worker_environment(device), n_cases, list(extra))


def finish_adapt(job: AdaptJob, registry: ModelRegistry | None, out: Path | None = None) -> Path:
    """Validate the new model and register it (or, for batch runs, move it to `out`, a new file)."""
    if not job.output.is_file():
        raise RuntimeError("the worker reported success but wrote no model file; nothing was changed")
    if out is not None:
        return publish_model(job.output, [out])
    return registry.register(job.output, job.parent)


def adapt_model(adaptation_set: AdaptationSet, model_path, registry: ModelRegistry | None, python: str,
                tune_layers: int | str = "auto", device: str = "auto", extra: Sequence[str] = (),
                on_line: Callable[[str], None] | None = None, keep_files: bool = False,
                out: Path | None = None) -> Path:
    """Blocking Adapt model: the same steps the widget runs in the background."""
    return run_blocking(
        "adapt",
        lambda workdir: prepare_adapt(adaptation_set, model_path, python, workdir, tune_layers, device,
                                      extra),
        lambda job, log: finish_adapt(job, registry, out),
        on_line, keep_files)


def tune_layers_recommendation(n_cases: int) -> tuple[int | None, str]:
    """(K, reason) for N cases, or (None, why not) when N = 0 (the rule is torch-free)."""
    if n_cases < 1:
        return None, "add at least one corrected case"
    return recommended_tune_layers(n_cases)
