"""The module's controller on real MRML with a real worker process (this interpreter as PythonSlicer).

Dialogs and the view are the only stand-ins: they record what the user would have seen and answer
questions as the test says. Segmentation runs a tiny untrained network on phantom scans (seconds).
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from mrml_testing import load_volume, make_scene
from phantom import phantom_arrays, phantom_image, save_tiny_model
from WMHDomainAdaptLogicLib.controller import Controller, State, Workspace
from WMHDomainAdaptLogicLib.segmentation import (
    FLAIR_REFERENCE,
    fill_wmh_segmentation,
    segment_to_flair_labelmap,
    wmh_segment_id,
)
from WMHDomainAdaptLogicLib.worker import WorkerProcess

from WMHDomainAdaptLib.modelfile import file_sha256

QUICK = ["--epochs", "1", "--patches-per-case", "16"]


@dataclass
class Parameters:
    """Stands in for the module's parameterNodeWrapper, which needs the Slicer application."""

    t1Volume: Any = None
    flairVolume: Any = None
    outputSegmentation: Any = None
    probabilityMap: bool = False
    replaceSegmentation: bool = False
    tuneLayers: int = 0
    modelPath: str = ""
    device: str = "cpu"


class Dialogs:
    def __init__(self, answer: bool = True):
        self.answer, self.questions, self.errors = answer, [], []

    def confirm(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer

    def error(self, message: str, details: str = "") -> None:
        self.errors.append(message)


class View:
    def __init__(self):
        self.statuses, self.logs, self.models, self.progress = [], [], [], []

    def show_status(self, text):
        self.statuses.append(text)

    def show_progress(self, percent):
        self.progress.append(percent)

    def append_log(self, line):
        self.logs.append(line)

    def show_new_model(self, path):
        self.models.append(path)

    def refresh(self):
        pass


class Workers:
    """Real worker processes, remembered so a test can check they are gone."""

    def __init__(self):
        self.started = []

    def __call__(self, command, env, cwd):
        worker = WorkerProcess(command, env, cwd=cwd)
        self.started.append(worker)
        return worker


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("shipped") / "wmh_source_synthetic.safetensors", n_cases=3)


def add_patient(scene, folder: Path, seed: int, name: str):
    t1, flair, label = phantom_arrays(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(phantom_image(t1), str(folder / "t1.nrrd"))
    sitk.WriteImage(phantom_image(flair), str(folder / "flair.nrrd"))
    return (load_volume(scene, folder / "t1.nrrd", f"{name} T1"),
            load_volume(scene, folder / "flair.nrrd", f"{name} FLAIR"), label)


@dataclass
class Setup:
    controller: Controller
    parameters: Parameters
    dialogs: Dialogs
    view: View
    workers: Workers
    scene: Any
    patients: list
    mrml: Any  # keeps the scene's logics alive


@pytest.fixture
def setup(model, tmp_path) -> Setup:
    mrml = make_scene()
    patients = [add_patient(mrml.scene, tmp_path / f"p{seed}", seed, f"P{seed}") for seed in (3, 4)]
    dialogs, view, workers = Dialogs(), View(), Workers()
    workspace = Workspace(tmp_path / "user", [model], sys.executable)
    controller = Controller(mrml.scene, workspace, view, dialogs, start_worker=workers, adapt_arguments=QUICK)
    parameters = Parameters(*patients[0][:2])
    controller.choose_model(str(model))
    controller.set_parameters(parameters)
    return Setup(controller, parameters, dialogs, view, workers, mrml.scene, patients, mrml)


def run_to_end(controller: Controller, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while controller.poll():
        assert time.monotonic() < deadline, "the worker did not finish in time"
        time.sleep(0.05)
    assert controller.state is State.IDLE


def segment(setup: Setup, patient: int) -> Any:
    t1, flair, _ = setup.patients[patient]
    setup.parameters.t1Volume, setup.parameters.flairVolume = t1, flair
    setup.controller.press_segment()
    run_to_end(setup.controller)
    return setup.parameters.outputSegmentation


def add_corrected_case(setup: Setup, patient: int) -> None:
    t1, flair, label = setup.patients[patient]
    corrected = setup.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"corrected {patient}")
    fill_wmh_segmentation(setup.scene, corrected, label, flair)
    setup.parameters.t1Volume, setup.parameters.flairVolume = t1, flair
    setup.parameters.outputSegmentation = corrected
    assert setup.controller.add_case() is not None


def wait_for_progress(setup: Setup, timeout: float = 120.0) -> None:
    """Until the worker has printed its first PROGRESS line: it is really working."""
    deadline = time.monotonic() + timeout
    while not any(p is not None and p > 0 for p in setup.view.progress):
        assert setup.controller.poll(), "the worker ended before reporting progress"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_segmenting_a_second_patient_creates_a_new_segmentation(setup):
    first = segment(setup, 0)
    first_mask = segment_to_flair_labelmap(setup.scene, first, setup.patients[0][1])

    second = segment(setup, 1)

    assert second is not first
    assert first.GetNodeReference(FLAIR_REFERENCE) is setup.patients[0][1]
    assert second.GetNodeReference(FLAIR_REFERENCE) is setup.patients[1][1]
    still = segment_to_flair_labelmap(setup.scene, first, setup.patients[0][1])
    np.testing.assert_array_equal(still, first_mask)
    assert setup.dialogs.errors == [] and setup.dialogs.questions == []


def test_segmenting_the_same_patient_again_makes_another_segmentation_unless_replace_is_ticked(setup):
    first = segment(setup, 0)
    again = segment(setup, 0)
    assert again is not first and setup.dialogs.questions == []


def test_replacing_asks_first_and_keeps_the_previous_segment_renamed(setup):
    first = segment(setup, 0)
    flair = setup.patients[0][1]
    corrected = np.zeros_like(segment_to_flair_labelmap(setup.scene, first, flair))
    corrected[5, 20:24, 20:24] = 1  # the clinician's correction
    fill_wmh_segmentation(setup.scene, first, corrected, flair)
    setup.parameters.replaceSegmentation = True

    again = segment(setup, 0)

    assert again is first and len(setup.dialogs.questions) == 1
    segmentation = first.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    previous = [name for name in names if name.startswith("WMH (previous")]
    assert len(previous) == 1 and "WMH" in names
    previous_id = segmentation.GetSegmentIdBySegmentName(previous[0])
    kept = segment_to_flair_labelmap(setup.scene, first, flair, previous_id)
    np.testing.assert_array_equal(kept, corrected)


def test_declining_the_replace_question_starts_no_worker(setup):
    first = segment(setup, 0)
    setup.parameters.replaceSegmentation = True
    setup.dialogs.answer = False
    started = len(setup.workers.started)

    setup.controller.press_segment()

    assert len(setup.workers.started) == started and setup.controller.state is State.IDLE
    assert first.GetSegmentation().GetNumberOfSegments() == 1


def test_a_result_never_lands_on_the_segmentation_of_another_flair(setup):
    first = segment(setup, 0)
    before = segment_to_flair_labelmap(setup.scene, first, setup.patients[0][1])
    setup.parameters.replaceSegmentation = True
    setup.parameters.t1Volume, setup.parameters.flairVolume = setup.patients[1][:2]
    started = len(setup.workers.started)

    setup.controller.press_segment()

    assert len(setup.workers.started) == started
    assert len(setup.dialogs.errors) == 1 and "P3 FLAIR" in setup.dialogs.errors[0]
    assert first.GetNodeReference(FLAIR_REFERENCE) is setup.patients[0][1]
    np.testing.assert_array_equal(segment_to_flair_labelmap(setup.scene, first, setup.patients[0][1]), before)


def test_closing_the_scene_while_adapting_cancels_the_worker_and_drops_its_result(setup):
    add_corrected_case(setup, 0)
    setup.controller.set_parameters(setup.parameters)
    controller = Controller(setup.scene, setup.controller.workspace, setup.view, setup.dialogs,
                            start_worker=setup.workers)  # the default recipe: long enough to close midway
    controller.choose_model(setup.parameters.modelPath)
    controller.set_parameters(setup.parameters)
    controller.press_adapt()
    assert controller.running_task == "adapt"
    setup.controller = controller
    wait_for_progress(setup)
    worker = setup.workers.started[-1]

    controller.scene_about_to_close()

    assert worker.process.poll() is not None and worker.cancelled
    assert controller.state is State.IDLE and not controller.poll()
    assert not (controller.workspace.model_folder).exists()
    assert not worker_files_left(worker)
    assert setup.dialogs.errors == [] and "scene was closed" in setup.view.statuses[-1]


def worker_files_left(worker) -> bool:
    return Path(worker.process.args[worker.process.args.index("--out") + 1]).exists()


def test_closing_the_scene_while_segmenting_creates_nothing_in_the_new_scene(setup):
    t1, flair, _ = setup.patients[0]
    setup.controller.press_segment()
    setup.controller.scene_about_to_close()
    setup.scene.Clear(0)
    setup.controller.set_parameters(Parameters())

    assert not setup.controller.poll()
    assert setup.scene.GetFirstNodeByClass("vtkMRMLSegmentationNode") is None
    assert setup.workers.started[-1].process.poll() is not None


def test_a_new_scene_keeps_the_selected_model_so_segment_is_ready(setup):
    setup.controller.scene_about_to_close()
    fresh = Parameters()
    setup.controller.set_parameters(fresh)
    assert fresh.modelPath == setup.parameters.modelPath
    fresh.t1Volume, fresh.flairVolume = setup.patients[0][:2]
    assert setup.controller.buttons().segment.enabled


def test_remove_clear_and_add_are_disabled_while_adapting_and_refused_if_called(setup):
    add_corrected_case(setup, 0)
    assert setup.controller.buttons().remove_cases.enabled and setup.controller.buttons().clear_set.enabled
    setup.controller.press_adapt()
    buttons = setup.controller.buttons()
    assert not buttons.remove_cases.enabled and not buttons.clear_set.enabled and not buttons.add_case.enabled
    assert "adaptation" in buttons.remove_cases.why
    assert buttons.adapt.text == "Cancel" and buttons.adapt.enabled and not buttons.segment.enabled

    setup.controller.remove_cases(["P3_FLAIR"])
    setup.controller.clear_set()
    assert len(setup.controller.workspace.adaptation_set()) == 1
    run_to_end(setup.controller)
    assert setup.view.models and setup.view.models[-1].parent == setup.controller.workspace.model_folder
    assert setup.parameters.modelPath == str(setup.view.models[-1])


def test_an_error_while_finishing_ends_in_a_dialog_and_the_idle_state(setup):
    t1, flair, _ = setup.patients[0]
    setup.controller.press_segment()
    setup.scene.RemoveNode(flair)  # the FLAIR disappears while the worker runs

    run_to_end(setup.controller)

    assert len(setup.dialogs.errors) == 1 and "no longer in the scene" in setup.dialogs.errors[0]
    assert setup.scene.GetFirstNodeByClass("vtkMRMLSegmentationNode") is None
    assert setup.controller.buttons().segment.text == "Segment"


def test_a_cancelled_run_shows_no_error_dialog_and_changes_nothing(setup):
    setup.controller.press_segment()
    setup.controller.press_segment()  # the button says Cancel now
    assert setup.controller.state is State.CANCELLING
    run_to_end(setup.controller)
    assert setup.dialogs.errors == [] and "Cancelled" in setup.view.statuses[-1]
    assert setup.scene.GetFirstNodeByClass("vtkMRMLSegmentationNode") is None


def test_a_segmentation_records_its_model_hash_threshold_date_and_library_version(setup, model):
    result = segment(setup, 0)
    assert result.GetAttribute("WMHDomainAdapt.model") == model.name
    assert result.GetAttribute("WMHDomainAdapt.model_sha256") == file_sha256(model)
    assert result.GetAttribute("WMHDomainAdapt.threshold") == "0.50"
    assert result.GetAttribute("WMHDomainAdapt.created")[:4].isdigit()
    assert "sha256 " + file_sha256(model)[:12] in setup.controller.provenance_text()


def test_lesion_statistics_follow_the_users_correction(setup):
    result = segment(setup, 0)
    flair = setup.patients[0][1]
    corrected = np.zeros_like(segment_to_flair_labelmap(setup.scene, result, flair))
    corrected[5, 10:14, 10:14] = 1
    corrected[8, 30:32, 30:32] = 1
    fill_wmh_segmentation(setup.scene, result, corrected, flair)
    voxel_ml = np.prod(flair.GetSpacing()) / 1000.0
    assert setup.controller.result_text() == f"WMH volume: {20 * voxel_ml:.2f} mL in 2 lesion(s)"


def test_the_statistics_table_lists_every_wmh_segmentation_and_exports_csv(setup, model, tmp_path):
    segment(setup, 0)
    segment(setup, 1)
    table = setup.controller.update_statistics_table()
    assert table.GetNumberOfRows() == 2
    assert setup.controller.update_statistics_table() is table  # reused, not one per refresh
    path = setup.controller.export_statistics(tmp_path / "wmh.csv")
    rows = list(csv.DictReader(path.open()))
    assert [row["case"] for row in rows] == ["P3 FLAIR", "P4 FLAIR"]
    assert {row["model"] for row in rows} == {model.name}
    assert all(float(row["volume_ml"]) >= 0 and int(row["lesion_count"]) >= 0 for row in rows)


def test_the_probability_map_is_shown_over_the_flair_and_reused_on_a_rerun(setup):
    views = [setup.scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]
    setup.parameters.probabilityMap = True
    segment(setup, 0)
    probability = setup.controller.last_result.probability_node
    flair = setup.patients[0][1]
    for view in views:
        assert view.GetBackgroundVolumeID() == flair.GetID()
        assert view.GetForegroundVolumeID() == probability.GetID() and view.GetForegroundOpacity() == 0.5
    assert probability.GetDisplayNode().GetApplyThreshold()

    segment(setup, 0)
    assert setup.controller.last_result.probability_node is probability
    volumes = setup.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    assert volumes.GetNumberOfItems() == 5  # 2 T1, 2 FLAIR, 1 probability map


def test_devices_are_asked_of_the_workers_torch(setup):
    devices = setup.controller.detect_devices()
    assert devices[0][0] == "auto" and devices[-1] == ("cpu", "CPU")
    assert len(devices) == 2 + torch.cuda.device_count() + int(torch.backends.mps.is_available())


def test_module_cleanup_cancels_the_worker(setup):
    setup.controller.press_segment()
    worker = setup.workers.started[-1]
    setup.controller.cleanup()
    assert worker.process.poll() is not None and setup.controller.state is State.IDLE


def test_wmh_segment_ids_stay_unique_when_a_previous_segment_is_kept(setup):
    first = segment(setup, 0)
    setup.parameters.replaceSegmentation = True
    segment(setup, 0)
    segment(setup, 0)
    segmentation = first.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    assert len(ids) == len(set(ids)) == 3
    assert segmentation.GetSegment(wmh_segment_id(first)).GetName() == "WMH"
