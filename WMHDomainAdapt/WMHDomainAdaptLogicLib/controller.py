"""The module's controller: everything the widget decides, without Qt.

State (idle, running, cancelling), which buttons are enabled and why, the parameter node across
scene closes, starting, polling, cancelling, finishing and failing a run. The widget only wires
Qt signals to these methods and shows what `buttons()` and the `View` calls say; the collaborators
that need Qt or a real Slicer (dialogs, the view, installing PyTorch) come in as small Protocols,
so the tests drive this class on real MRML from slicer-core with a real worker process.

The rules that keep a clinician's work:
- Segment writes a new segmentation, unless the user ticked "replace" with a segmentation selected;
  then it asks first, refuses a segmentation made on another FLAIR, and keeps the current WMH
  segment, renamed and hidden, beside the new one.
- Closing the scene, or the module's cleanup, cancels a running worker and drops its result.
- While an adaptation runs, nothing may change the adaptation set it reads.
- Whatever goes wrong while finishing a run ends in an error dialog and the idle state.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from .adaptation_set import AdaptationSet, add_case_from_nodes
from .dependencies import missing_packages
from .operations import (
    AdaptJob,
    SegmentJob,
    SegmentResult,
    WorkerFailed,
    check_worker_result,
    finish_adapt,
    finish_segment,
    new_workdir,
    prepare_adapt,
    prepare_segment,
)
from .registry import ModelRegistry
from .segmentation import check_belongs_to, flair_of, read_provenance
from .statistics import segmentation_statistics, statistics_rows, update_table_node, write_csv
from .worker import WorkerProcess, devices_command, parse_devices, parse_progress_line, worker_environment

DEFAULT_DEVICES = [("auto", "Auto (best available)"), ("cpu", "CPU")]


class State(Enum):
    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"


class Worker(Protocol):
    """A running worker process (`worker.WorkerProcess`)."""

    log: list[str]
    cancelled: bool

    @property
    def finished(self) -> bool: ...

    @property
    def returncode(self) -> int | None: ...

    def drain(self) -> list[str]: ...

    def cancel(self) -> None: ...


class StartWorker(Protocol):
    def __call__(self, command: Sequence[str], env: dict, cwd: Path) -> Worker: ...


class Dialogs(Protocol):
    """Questions and errors for the user (Slicer's message boxes in the module)."""

    def confirm(self, question: str) -> bool: ...

    def error(self, message: str, details: str = "") -> None: ...


class View(Protocol):
    """What the controller tells the widget; after `refresh` the widget re-reads `buttons()`."""

    def show_status(self, text: str) -> None: ...

    def show_progress(self, percent: int | None) -> None: ...  # None: busy, no figure yet

    def append_log(self, line: str) -> None: ...

    def show_new_model(self, path: Path) -> None: ...

    def refresh(self) -> None: ...


class Parameters(Protocol):
    """The module's parameter node (`WMHDomainAdaptParameterNode` in the module file)."""

    t1Volume: Any
    flairVolume: Any
    outputSegmentation: Any
    probabilityMap: bool
    replaceSegmentation: bool
    tuneLayers: int
    modelPath: str
    device: str


@dataclass
class Workspace:
    """Where the module keeps its files, and which Python runs the worker (PythonSlicer)."""

    user_folder: Path
    shipped_models: list
    python: str

    @property
    def model_folder(self) -> Path:
        return self.user_folder / "Models"

    @property
    def set_folder(self) -> Path:
        return self.user_folder / "AdaptationSet"

    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.model_folder, [p for p in self.shipped_models if Path(p).is_file()])

    def adaptation_set(self) -> AdaptationSet:
        return AdaptationSet(self.set_folder)


@dataclass(frozen=True)
class Button:
    enabled: bool
    text: str
    why: str = ""  # the tooltip: why it is disabled, or what it will do


@dataclass(frozen=True)
class Buttons:
    segment: Button
    adapt: Button
    add_case: Button
    remove_cases: Button
    clear_set: Button
    open_editor: Button


@dataclass
class _Run:
    task: str  # "segment" or "adapt"
    job: Any  # SegmentJob or AdaptJob
    worker: Worker
    target: Any = None  # the segmentation to replace (segment only), chosen when the run started


class Controller:
    def __init__(self, scene, workspace: Workspace, view: View, dialogs: Dialogs,
                 start_worker: StartWorker = WorkerProcess,
                 ensure_dependencies: Callable[[], bool] = lambda: True,
                 keep_files: Callable[[], bool] = lambda: False, adapt_arguments: Sequence[str] = ()):
        """`adapt_arguments`: extra `wmhda adapt` options for every adaptation (the tests: one epoch)."""
        self.scene, self.workspace, self.view, self.dialogs = scene, workspace, view, dialogs
        self._adapt_arguments = list(adapt_arguments)
        self._start_worker, self._ensure_dependencies, self._keep_files = (
            start_worker, ensure_dependencies, keep_files)
        self.parameters: Parameters | None = None
        self.state = State.IDLE
        self.last_result: SegmentResult | None = None
        self._run: _Run | None = None
        self._model_path, self._device = "", "auto"  # what the selectors show, carried across scenes

    # The parameter node and the selectors

    def set_parameters(self, parameters: Parameters | None) -> None:
        """Attach a parameter node (module entered, or the scene's new one after a close).

        A new scene's node starts empty: it takes the model and device the selectors still show.
        """
        self.parameters = parameters
        if parameters is not None:
            if not parameters.modelPath and self._model_path:
                parameters.modelPath = self._model_path
            if parameters.device == "auto" and self._device != "auto":
                parameters.device = self._device
        self.view.refresh()

    def choose_model(self, path: str) -> None:
        self._model_path = path or ""
        if self.parameters is not None:
            self.parameters.modelPath = self._model_path
        self.view.refresh()

    def choose_device(self, key: str) -> None:
        self._device = key or "auto"
        if self.parameters is not None:
            self.parameters.device = self._device

    # What the buttons say

    @property
    def running_task(self) -> str | None:
        return self._run.task if self._run is not None else None

    def buttons(self) -> Buttons:
        task, p = self.running_task, self.parameters
        n_cases = len(self.workspace.adaptation_set())
        adapting = task == "adapt"
        set_busy = "the running adaptation reads the adaptation set" if adapting else ""
        return Buttons(
            segment=self._run_button("segment", "Segment", self._segment_blocker()),
            adapt=self._run_button("adapt", "Adapt model", self._adapt_blocker(n_cases)),
            add_case=_button(set_busy or self._add_case_blocker(), "Add to adaptation set"),
            remove_cases=_button(set_busy or ("" if n_cases else "the adaptation set is empty"), "Remove"),
            clear_set=_button(set_busy or ("" if n_cases else "the adaptation set is empty"), "Clear"),
            open_editor=_button("" if p is not None and p.outputSegmentation is not None
                                and p.flairVolume is not None else "select a FLAIR and a segmentation",
                                "Correct in Segment Editor"))

    def _run_button(self, task: str, label: str, blocker: str) -> Button:
        if self.running_task == task:
            if self.state is State.CANCELLING:
                return Button(False, "Cancelling...", "waiting for the worker to stop")
            return Button(True, "Cancel", "stop the worker; nothing is changed")
        if self._run is not None:
            return Button(False, label, f"wait until the running {self.running_task} ends")
        return _button(blocker, label)

    def _segment_blocker(self) -> str:
        p = self.parameters
        if p is None:
            return "the module has no parameter node yet"
        if p.t1Volume is None or p.flairVolume is None:
            return "select a T1 and a FLAIR"
        if p.t1Volume is p.flairVolume:
            return "T1 and FLAIR are the same volume"
        return "" if p.modelPath else "select a model"

    def _adapt_blocker(self, n_cases: int) -> str:
        if self.parameters is None or not self.parameters.modelPath:
            return "select a model"
        return "" if n_cases else "add at least one corrected case to the adaptation set"

    def _add_case_blocker(self) -> str:
        p = self.parameters
        if p is None or p.t1Volume is None or p.flairVolume is None or p.outputSegmentation is None:
            return "select a T1, a FLAIR and the corrected segmentation"
        return ""

    # Starting and stopping work

    def press_segment(self) -> None:
        """Segment, or Cancel while segmenting."""
        if self.running_task == "segment":
            self.cancel()
        elif self._run is None:
            self._guarded("Segmentation could not start", self._start_segment)

    def press_adapt(self) -> None:
        """Adapt model, or Cancel while adapting."""
        if self.running_task == "adapt":
            self.cancel()
        elif self._run is None:
            self._guarded("Adaptation could not start", self._start_adapt)

    def _start_segment(self) -> None:
        p = self.parameters
        blocker = self._segment_blocker()
        if blocker:
            raise ValueError(blocker)
        target = p.outputSegmentation if p.replaceSegmentation else None
        if target is not None:
            check_belongs_to(target, p.flairVolume)
            question = (f"Replace the WMH segment of '{target.GetName()}' with a new result? The current "
                        f"segment is kept in it, renamed 'WMH (previous, ...)' and hidden.")
            if not self.dialogs.confirm(question):
                return
        if not self._ensure_dependencies():
            return
        job = prepare_segment(p.t1Volume, p.flairVolume, p.modelPath, self.workspace.python,
                              new_workdir("segment"), p.device, p.probabilityMap)
        self._start("segment", job, target)

    def _start_adapt(self) -> None:
        p = self.parameters
        blocker = self._adapt_blocker(len(self.workspace.adaptation_set()))
        if blocker:
            raise ValueError(blocker)
        if not self._ensure_dependencies():
            return
        job = prepare_adapt(self.workspace.adaptation_set(), p.modelPath, self.workspace.python,
                            new_workdir("adapt"), p.tuneLayers or "auto", p.device, self._adapt_arguments)
        self._start("adapt", job)

    def _start(self, task: str, job, target=None) -> None:
        try:
            worker = self._start_worker(job.command, job.env, job.workdir)
        except BaseException:
            shutil.rmtree(job.workdir, ignore_errors=True)
            raise
        self._run = _Run(task, job, worker, target)
        self.state = State.RUNNING
        self.view.append_log(" ".join(job.command))
        self.view.show_progress(None)
        self.view.show_status("Running... the application stays usable.")
        self.view.refresh()

    def cancel(self) -> None:
        """Stop the worker; the next `poll` reports the cancel and returns to idle."""
        if self._run is None or self.state is not State.RUNNING:
            return
        self.state = State.CANCELLING
        self.view.refresh()
        self._run.worker.cancel()

    def poll(self) -> bool:
        """Pass on the worker's new lines; finish the run once it ended. True while one runs."""
        run = self._run
        if run is None:
            return False
        finished = run.worker.finished
        for line in run.worker.drain():
            self._show_line(line)
        if finished:
            self._finish(run)
        return self._run is not None

    def _show_line(self, line: str) -> None:
        event = parse_progress_line(line)
        if event is None:
            self.view.append_log(line)
            return
        self.view.show_progress(int(100 * event.fraction))
        figures = "  ".join(f"{key} {value:.3f}" for key, value in event.figures.items())
        eta = f", about {event.eta_seconds:.0f} s left" if event.eta_seconds else ""
        self.view.show_status(f"{event.task} {event.done}/{event.total}{eta}  {figures}")

    def drop_run(self, reason: str) -> None:
        """Cancel a running worker and forget its result (scene closing, module cleanup)."""
        run, self._run = self._run, None
        self.state = State.IDLE
        if run is None:
            return
        run.worker.cancel()
        shutil.rmtree(run.job.workdir, ignore_errors=True)
        self.view.show_progress(0)
        self.view.show_status(f"The {run.task} was cancelled: {reason}. Nothing was changed.")
        self.view.refresh()

    def scene_about_to_close(self) -> None:
        self.drop_run("the scene was closed")
        self.last_result = None
        self.parameters = None

    def cleanup(self) -> None:
        self.drop_run("the module was closed")

    # Finishing a run

    def _finish(self, run: _Run) -> None:
        self._run = None
        self.state = State.IDLE
        try:
            check_worker_result(run.worker, run.job.workdir)
            if run.task == "segment":
                self._finish_segment(run.job, run.target, run.worker.log)
            else:
                self._finish_adapt(run.job)
            self.view.show_progress(100)
        except WorkerFailed as error:
            self.view.show_progress(0)
            self._report_failure(run, error)
        except Exception as error:  # noqa: BLE001  (whatever it is, the user sees it and we end idle)
            self.view.show_progress(0)
            self.view.show_status(f"The {run.task} result could not be used: {error}")
            details = traceback.format_exc() + "\n" + "\n".join(run.worker.log)
            self.dialogs.error(f"The {run.task} result could not be used: {error}", details)
        finally:
            if self._keep_files():
                self.view.append_log(f"Worker files kept in {run.job.workdir}")
            else:
                shutil.rmtree(run.job.workdir, ignore_errors=True)
            self.view.refresh()

    def _finish_segment(self, job: SegmentJob, target, log: Sequence[str]) -> None:
        if target is not None and target.GetScene() is not self.scene:
            target = None  # the user deleted it meanwhile: the result goes to a new segmentation
        result = finish_segment(self.scene, job, target, log=log)
        self.last_result = result
        if self.parameters is not None:
            self.parameters.outputSegmentation = result.segmentation_node
        done = "Done. Correct the WMH segment in the Segment Editor if needed."
        self.view.show_status(f"Done, but: {result.warnings[0]}" if result.warnings else done)

    def _finish_adapt(self, job: AdaptJob) -> None:
        path = finish_adapt(job, self.workspace.registry())
        self.choose_model(str(path))
        self.view.show_new_model(path)
        self.view.show_status(f"New model saved and selected: {path.name}")

    def _report_failure(self, run: _Run, error: WorkerFailed) -> None:
        self.view.show_status(str(error))
        self.view.append_log(str(error))
        if error.cancelled:
            return
        if error.out_of_memory and self.parameters is not None and self.parameters.device != "cpu":
            if self.dialogs.confirm(f"{error}\n\nRun again on the CPU now?"):
                self.choose_device("cpu")
                (self.press_segment if run.task == "segment" else self.press_adapt)()
            return
        self.dialogs.error(str(error), " ".join(run.job.command) + "\n\n" + "\n".join(error.log))

    def _guarded(self, title: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as error:  # noqa: BLE001  (a user-facing boundary: one dialog, stay idle)
            self.view.show_status(f"{title}: {error}")
            details = "" if isinstance(error, ValueError) else traceback.format_exc()
            self.dialogs.error(f"{title}: {error}", details)
        self.view.refresh()

    # The adaptation set

    def add_case(self) -> str | None:
        """Store the selected T1, FLAIR and corrected segmentation; returns the case id."""
        if self.running_task == "adapt":
            return None
        p = self.parameters
        try:
            case = add_case_from_nodes(self.scene, self.workspace.adaptation_set(), p.t1Volume, p.flairVolume,
                                       p.outputSegmentation)
        except (ValueError, RuntimeError, OSError) as error:
            self.dialogs.error(f"Could not add the case: {error}")
            return None
        self.view.append_log(f"Added case {case.case_id} to the adaptation set.")
        self.view.refresh()
        return case.case_id

    def remove_cases(self, case_ids: Sequence[str]) -> None:
        if self.running_task == "adapt":
            return
        for case_id in case_ids:
            self.workspace.adaptation_set().remove(case_id)
        self.view.refresh()

    def clear_set(self) -> None:
        if self.running_task == "adapt":
            return
        if self.dialogs.confirm("Remove all cases from the adaptation set? Their stored copies are "
                                "deleted; your scene is not changed."):
            self.workspace.adaptation_set().clear()
        self.view.refresh()

    # What the result shows

    def result_text(self) -> str:
        """Volume and lesion count of the selected segmentation as it is now (after corrections)."""
        p = self.parameters
        segmentation = p.outputSegmentation if p is not None else None
        if segmentation is None:
            return ""
        flair = flair_of(segmentation) or p.flairVolume
        statistics = segmentation_statistics(self.scene, segmentation, flair)
        if statistics is None:
            return ""
        return f"WMH volume: {statistics.volume_ml:.2f} mL in {statistics.count} lesion(s)"

    def provenance_text(self) -> str:
        p = self.parameters
        segmentation = p.outputSegmentation if p is not None else None
        provenance = read_provenance(segmentation) if segmentation is not None else None
        return f"Made by {provenance.describe()}" if provenance else ""

    def update_statistics_table(self):
        """The scene's table of WMH segmentations (case, volume, lesion count, model), refreshed."""
        return update_table_node(self.scene, statistics_rows(self.scene))

    def export_statistics(self, path: str | Path) -> Path:
        return write_csv(statistics_rows(self.scene), path)

    # Devices

    def detect_devices(self, timeout: float = 60.0) -> list[tuple[str, str]]:
        """Auto, each CUDA GPU by name, MPS, CPU: asked of the worker's torch, never imported here."""
        if "torch" in missing_packages() or self._run is not None:
            return list(DEFAULT_DEVICES)
        folder = Path(tempfile.mkdtemp(prefix="wmhda-devices-"))
        try:
            command = devices_command(self.workspace.python)
            worker = self._start_worker(command, worker_environment("auto"), folder)
            deadline = time.monotonic() + timeout
            while not worker.finished and time.monotonic() < deadline:
                time.sleep(0.05)
            if not worker.finished:
                worker.cancel()
            worker.drain()
            return parse_devices(worker.log) if worker.returncode == 0 else list(DEFAULT_DEVICES)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _button(blocker: str, text: str) -> Button:
    return Button(not blocker, text, blocker)
