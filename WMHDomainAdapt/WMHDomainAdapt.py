"""WMHDomainAdapt: white matter hyperintensity segmentation on T1 + FLAIR, and few-shot adaptation
of the network to a new scanner protocol from a few corrected scans (Ghafoorian et al., MICCAI 2017).

This file only wires widgets to `WMHDomainAdaptLogicLib`, which holds everything that touches MRML
and is tested in CI against real MRML without the Slicer application. Long work (segmentation,
adaptation) runs in a `PythonSlicer -m WMHDomainAdaptLib` child process, so the GUI never imports
torch and stays responsive.
"""

import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

MODULE_DIR = Path(__file__).resolve().parent


def _addLibraryPaths() -> None:
    """WMHDomainAdaptLib sits beside this file when installed, one folder up in a source checkout."""
    for folder in (MODULE_DIR, MODULE_DIR.parent):
        if (folder / "WMHDomainAdaptLib").is_dir() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


_addLibraryPaths()

from WMHDomainAdaptLogicLib import dependencies  # noqa: E402
from WMHDomainAdaptLogicLib.adaptation_set import AdaptationSet, add_case_from_nodes  # noqa: E402
from WMHDomainAdaptLogicLib.operations import (  # noqa: E402
    WorkerFailed,
    adapt_model,
    check_worker_result,
    finish_adapt,
    finish_segment,
    new_workdir,
    prepare_adapt,
    prepare_segment,
    segment_volumes,
    tune_layers_recommendation,
)
from WMHDomainAdaptLogicLib.registry import ModelRegistry  # noqa: E402
from WMHDomainAdaptLogicLib.worker import WorkerProcess, default_python, parse_progress_line  # noqa: E402

SHIPPED_MODEL = "Models/wmh_source_synthetic.safetensors"
DEVICES = (("auto", "Auto"), ("cuda", "GPU"), ("cpu", "CPU"))
SETTINGS = "WMHDomainAdapt"


def resourcePath(relative: str) -> str:
    """Resources are beside the module when installed and at the repository top in a checkout."""
    for base in (MODULE_DIR / "Resources", MODULE_DIR.parent / "Resources"):
        if (base / relative).exists():
            return str(base / relative)
    return str(MODULE_DIR / "Resources" / relative)


#
# Module
#


class WMHDomainAdapt(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("WMH Domain Adapt")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["WMHDomainAdapt contributors"]
        self.parent.helpText = _(
            "Segments white matter hyperintensities (WMH) on a T1 and a FLAIR scan, and adapts the "
            "network to your scanner protocol from a few scans you corrected: Segment, correct the "
            "result in the Segment Editor, Add to adaptation set, repeat for a few patients, then "
            "Adapt model. Research use only; not for clinical decisions.")
        self.parent.acknowledgementText = _(
            "Method: M. Ghafoorian et al., Transfer Learning for Domain Adaptation in MRI: Application "
            "in Brain Lesion Segmentation, MICCAI 2017.")
        iconPath = resourcePath("Icons/WMHDomainAdapt.png")
        if os.path.exists(iconPath):
            self.parent.icon = qt.QIcon(iconPath)


#
# Parameter node
#


@parameterNodeWrapper
class WMHDomainAdaptParameterNode:
    t1Volume: vtkMRMLScalarVolumeNode
    flairVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    probabilityMap: bool = False
    tuneLayers: Annotated[int, WithinRange(0, 15)] = 0  # 0 = recommended for the set's size
    modelPath: str = ""
    device: str = "auto"


#
# Widget
#


class WMHDomainAdaptWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._worker = None
        self._job = None
        self._task = None
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.timeout.connect(self.onWorkerTimer)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(resourcePath("UI/WMHDomainAdapt.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = WMHDomainAdaptLogic()

        for key, label in DEVICES:
            self.ui.deviceSelector.addItem(_(label), key)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.adaptButton.connect("clicked(bool)", self.onAdaptButton)
        self.ui.addCaseButton.connect("clicked(bool)", self.onAddCase)
        self.ui.removeCaseButton.connect("clicked(bool)", self.onRemoveCases)
        self.ui.clearSetButton.connect("clicked(bool)", self.onClearSet)
        self.ui.refreshModelsButton.connect("clicked(bool)", self.refreshModels)
        self.ui.modelSelector.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.deviceSelector.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.openModelFolderButton.connect("clicked(bool)",
                                              lambda: self.openFolder(self.logic.modelFolder()))
        self.ui.openSetFolderButton.connect("clicked(bool)", lambda: self.openFolder(self.logic.setFolder()))
        self.initializeParameterNode()
        self.refreshModels()
        self.refreshAdaptationSet()

    def cleanup(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            index = self.ui.deviceSelector.findData(self._parameterNode.device)
            self.ui.deviceSelector.setCurrentIndex(max(index, 0))
            self.updateButtons()

    # State of the buttons

    def updateButtons(self, caller=None, event=None) -> None:
        node = self._parameterNode
        running = self._worker is not None
        ready = bool(node and node.t1Volume and node.flairVolume and node.modelPath)
        self.ui.segmentButton.text = _("Cancel") if self._task == "segment" else _("Segment")
        self.ui.segmentButton.enabled = (ready and not running) or self._task == "segment"
        self.ui.segmentButton.toolTip = "" if ready else _("Select a T1, a FLAIR and a model.")
        self.ui.adaptButton.text = _("Cancel") if self._task == "adapt" else _("Adapt model")
        self.ui.adaptButton.enabled = (bool(node and node.modelPath) and not running) or self._task == "adapt"
        self.ui.addCaseButton.enabled = bool(node and node.t1Volume and node.flairVolume
                                             and node.outputSegmentation) and not running

    # Models

    def refreshModels(self) -> None:
        entries, problems = self.logic.registry().entries()
        current = self._parameterNode.modelPath if self._parameterNode else ""
        selector = self.ui.modelSelector
        wasBlocked = selector.blockSignals(True)
        selector.clear()
        for entry in entries:
            selector.addItem(entry.label, str(entry.path))
            selector.setItemData(selector.count - 1, entry.tooltip, qt.Qt.ToolTipRole)
        selector.blockSignals(wasBlocked)
        for problem in problems:
            self.appendLog(_("Skipped model file: {problem}").format(problem=problem))
        if not entries:
            self.ui.statusLabel.text = _("No model found. Reinstall the extension or check {folder}.").format(
                folder=self.logic.modelFolder())
        index = selector.findData(current) if current else -1
        selector.setCurrentIndex(index if index >= 0 else 0)
        self.onModelChanged()

    def selectModel(self, path) -> None:
        self.refreshModels()
        index = self.ui.modelSelector.findData(str(path))
        if index >= 0:
            self.ui.modelSelector.setCurrentIndex(index)

    def onModelChanged(self, index=None) -> None:
        if self._parameterNode:
            self._parameterNode.modelPath = self.ui.modelSelector.currentData or ""
        self.ui.modelSelector.toolTip = self.ui.modelSelector.itemData(
            self.ui.modelSelector.currentIndex, qt.Qt.ToolTipRole) or ""

    def onDeviceChanged(self, index=None) -> None:
        if self._parameterNode:
            self._parameterNode.device = self.ui.deviceSelector.currentData or "auto"

    # Adaptation set

    def refreshAdaptationSet(self) -> None:
        cases = self.logic.adaptationSet().cases()
        self.ui.caseList.clear()
        for case in cases:
            item = qt.QListWidgetItem(case.case_id)
            item.setToolTip(str(case.flair.parent))
            self.ui.caseList.addItem(item)
        layers, reason = tune_layers_recommendation(len(cases))
        self.ui.setSizeLabel.text = _("N = {n} case(s). Recommended: {advice}").format(
            n=len(cases), advice=reason if layers is None else _("tune the last {k} layers").format(k=layers))
        self.ui.setSizeLabel.toolTip = reason
        self.ui.removeCaseButton.enabled = self.ui.clearSetButton.enabled = bool(cases)

    def onAddCase(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not add the case."), waitCursor=True):
            case = self.logic.addToAdaptationSet(node.t1Volume, node.flairVolume, node.outputSegmentation)
            self.appendLog(_("Added case {id} to the adaptation set.").format(id=case.case_id))
        self.refreshAdaptationSet()

    def onRemoveCases(self) -> None:
        for item in self.ui.caseList.selectedItems():
            self.logic.adaptationSet().remove(item.text())
        self.refreshAdaptationSet()

    def onClearSet(self) -> None:
        if slicer.util.confirmYesNoDisplay(_("Remove all cases from the adaptation set? Their stored "
                                             "copies are deleted; your scene is not changed.")):
            self.logic.adaptationSet().clear()
            self.refreshAdaptationSet()

    # Background work

    def onSegmentButton(self) -> None:
        if self._task == "segment":
            self.cancelWork()
            return
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Segmentation could not start."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            job = self.logic.prepareSegment(node.t1Volume, node.flairVolume, node.modelPath, node.device,
                                            node.probabilityMap)
            self.startWork("segment", job)

    def onAdaptButton(self) -> None:
        if self._task == "adapt":
            self.cancelWork()
            return
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Adaptation could not start."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            job = self.logic.prepareAdapt(node.modelPath, node.tuneLayers or "auto", node.device)
            self.startWork("adapt", job)

    def startWork(self, task: str, job) -> None:
        self.ui.logTextEdit.clear()
        self.appendLog(" ".join(job.command))
        self._worker = WorkerProcess(job.command, job.env, cwd=job.workdir)  # may raise: PythonSlicer missing
        self._task, self._job = task, job
        self.ui.progressBar.setRange(0, 0)  # busy until the first PROGRESS line
        self.ui.statusLabel.text = _("Running... the application stays usable.")
        self.ui.resultLabel.text = ""
        self._timer.start()
        self.updateButtons()

    def cancelWork(self) -> None:
        if self._worker is not None:
            self._worker.cancel()  # the timer sees the exit and reports it

    def onWorkerTimer(self) -> None:
        worker = self._worker
        finished = worker.finished
        for line in worker.drain():
            self.showLine(line)
        if finished:
            self._timer.stop()
            self.finishWork()

    def showLine(self, line: str) -> None:
        event = parse_progress_line(line)
        if event is None:
            self.appendLog(line)
            return
        self.ui.progressBar.setRange(0, 100)
        self.ui.progressBar.value = int(100 * event.fraction)
        figures = "  ".join(f"{key} {value:.3f}" for key, value in event.figures.items())
        eta = _(", about {s:.0f} s left").format(s=event.eta_seconds) if event.eta_seconds else ""
        self.ui.statusLabel.text = f"{event.task} {event.done}/{event.total}{eta}  {figures}"

    def finishWork(self) -> None:
        worker, job, task = self._worker, self._job, self._task
        self._worker = self._job = self._task = None
        self.ui.progressBar.setRange(0, 100)
        try:
            check_worker_result(worker, job.workdir)
            if task == "segment":
                self.showSegmentResult(self.logic.finishSegment(job, self._parameterNode.outputSegmentation,
                                                                worker.log))
            else:
                path = self.logic.finishAdapt(job)
                self.selectModel(path)
                self.ui.statusLabel.text = _("New model saved and selected: {name}").format(name=path.name)
            self.ui.progressBar.value = 100
        except WorkerFailed as error:
            self.ui.progressBar.value = 0
            self.reportFailure(task, job, error)
        except (ValueError, RuntimeError, OSError) as error:
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = str(error)
            slicer.util.errorDisplay(str(error), detailedText="\n".join(worker.log))
        finally:
            self.cleanupWorkdir(job)
            self.updateButtons()

    def showSegmentResult(self, result) -> None:
        self._parameterNode.outputSegmentation = result.segmentation_node
        statistics = result.statistics
        self.ui.resultLabel.text = _("WMH volume: {ml:.2f} mL in {n} lesion(s)").format(
            ml=statistics.volume_ml, n=statistics.count)
        self.ui.statusLabel.text = _("Done. Correct the WMH segment in the Segment Editor if needed.")
        if result.warnings:
            self.ui.statusLabel.text = _("Done, but: {warning}").format(warning=result.warnings[0])

    def reportFailure(self, task: str, job, error: WorkerFailed) -> None:
        self.ui.statusLabel.text = str(error)
        self.appendLog(str(error))
        if error.out_of_memory and self._parameterNode.device != "cpu":
            question = _("{message}\n\nRun again on the CPU now?").format(message=error)
            if slicer.util.confirmYesNoDisplay(question):
                self.ui.deviceSelector.setCurrentIndex(self.ui.deviceSelector.findData("cpu"))
                (self.onSegmentButton if task == "segment" else self.onAdaptButton)()
            return
        if "Cancelled" not in str(error):
            details = " ".join(job.command) + "\n\n" + "\n".join(error.log)
            slicer.util.errorDisplay(str(error), detailedText=details)

    def cleanupWorkdir(self, job) -> None:
        if self.ui.keepFilesCheckBox.checked:
            self.appendLog(_("Worker files kept in {folder}").format(folder=job.workdir))
        else:
            shutil.rmtree(job.workdir, ignore_errors=True)

    def appendLog(self, text: str) -> None:
        self.ui.logTextEdit.appendPlainText(text)
        logging.info(text)

    def openFolder(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(folder)))


#
# Logic
#


class WMHDomainAdaptLogic(ScriptedLoadableModuleLogic):
    """Usable without the widget (Python console, scripts, tests).

    Methods raise ValueError with a message for the user on bad input. `segment` and `adapt` block
    until the worker ends (the widget uses the prepare/finish pair instead).
    """

    def __init__(self, userFolder=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._userFolder = Path(userFolder) if userFolder else None

    def getParameterNode(self):
        return WMHDomainAdaptParameterNode(super().getParameterNode())

    def userFolder(self) -> Path:
        if self._userFolder is None:
            default = Path(slicer.app.slicerUserSettingsFilePath).parent / "WMHDomainAdapt"
            self._userFolder = Path(qt.QSettings().value(f"{SETTINGS}/UserFolder", str(default)))
        return self._userFolder

    def modelFolder(self) -> Path:
        return self.userFolder() / "Models"

    def setFolder(self) -> Path:
        return self.userFolder() / "AdaptationSet"

    def registry(self) -> ModelRegistry:
        shipped = Path(resourcePath(SHIPPED_MODEL))
        return ModelRegistry(self.modelFolder(), [shipped] if shipped.is_file() else [])

    def adaptationSet(self) -> AdaptationSet:
        return AdaptationSet(self.setFolder())

    def ensureDependencies(self, askConfirmation=None) -> bool:
        """Install torch (through the PyTorch extension) and safetensors when the user acts."""
        missing = dependencies.missing_packages()
        if not missing:
            return True
        if askConfirmation is None:
            askConfirmation = not slicer.app.commandOptions().testingEnabled
        if "torch" in missing:
            try:
                import PyTorchUtils
            except ImportError:
                raise ValueError(_("This module needs PyTorch. Install the 'PyTorch' extension from the "
                                   "Extensions Manager, restart Slicer, and try again.")) from None
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=askConfirmation, torchVersionRequirement=dependencies.TORCH_REQUIREMENT)
            if torch is None:
                return False
        if "safetensors" in dependencies.missing_packages():
            if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                    _("The 'safetensors' Python package will be installed (model files).")):
                return False
            slicer.util.pip_install("safetensors")
        return True

    def prepareSegment(self, t1Volume, flairVolume, modelPath, device="auto", probabilityMap=False):
        return prepare_segment(t1Volume, flairVolume, modelPath, default_python(), new_workdir("segment"),
                               device, probabilityMap)

    def finishSegment(self, job, outputSegmentation=None, log=()):
        return finish_segment(slicer.mrmlScene, job, outputSegmentation, log=log)

    def prepareAdapt(self, modelPath, tuneLayers="auto", device="auto", extra=()):
        return prepare_adapt(self.adaptationSet(), modelPath, default_python(), new_workdir("adapt"),
                             tuneLayers, device, extra)

    def finishAdapt(self, job) -> Path:
        return finish_adapt(job, self.registry())

    def addToAdaptationSet(self, t1Volume, flairVolume, segmentationNode):
        return add_case_from_nodes(slicer.mrmlScene, self.adaptationSet(), t1Volume, flairVolume,
                                   segmentationNode)

    def segment(self, t1Volume, flairVolume, modelPath, device="auto", probabilityMap=False,
                outputSegmentation=None):
        """Blocking Segment; returns a result with segmentation_node, probability_node, statistics."""
        return segment_volumes(slicer.mrmlScene, t1Volume, flairVolume, modelPath, default_python(), device,
                               probabilityMap, outputSegmentation, on_line=logging.info)

    def adapt(self, modelPath, tuneLayers="auto", device="auto", extra=()) -> Path:
        """Blocking Adapt model; returns the new registered model file."""
        return adapt_model(self.adaptationSet(), modelPath, self.registry(), default_python(), tuneLayers,
                           device, extra, on_line=logging.info)


#
# Test
#


class WMHDomainAdaptTest(ScriptedLoadableModuleTest):
    """The module's flow inside a real Slicer: segment, add a corrected case, adapt, select."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegmentAddAdapt()

    def _phantom(self):
        import numpy as np

        z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in (12, 48, 40)], indexing="ij")
        brain = (x / 0.85) ** 2 + (y / 0.9) ** 2 + (z / 1.1) ** 2 < 1.0
        lesion = ((x - 0.2) ** 2 + y ** 2 + (z / 2) ** 2 < 0.02) & brain
        t1 = np.where(brain, 100.0, 0.0).astype(np.float32)
        flair = np.where(lesion, 110.0, np.where(brain, 60.0, 0.0)).astype(np.float32)
        ijkToRas = vtk.vtkMatrix4x4()
        ijkToRas.SetElement(0, 0, -1.0)
        ijkToRas.SetElement(1, 1, -1.2)
        ijkToRas.SetElement(2, 2, 3.0)
        nodes = [slicer.util.addVolumeFromArray(a, name=n) for a, n in ((t1, "T1"), (flair, "FLAIR"))]
        for node in nodes:
            node.SetIJKToRASMatrix(ijkToRas)
        return nodes[0], nodes[1], lesion.astype(np.uint8)

    def _tinyModel(self, folder: Path) -> Path:
        import torch

        from WMHDomainAdaptLib.model import WMHNet
        from WMHDomainAdaptLib.modelfile import build_metadata, save_model
        from WMHDomainAdaptLib.preprocess import PreprocessConfig

        torch.manual_seed(0)
        network = WMHNet()
        metadata = build_metadata(network, PreprocessConfig(n4=False), 0.5, {"domain": "source"})
        return save_model(folder / "source.safetensors", network, metadata)

    def test_SegmentAddAdapt(self):
        import tempfile

        import numpy as np
        from WMHDomainAdaptLogicLib.segmentation import fill_wmh_segmentation, segment_to_flair_labelmap

        self.delayDisplay("Starting the segment/add/adapt flow")
        folder = Path(tempfile.mkdtemp(prefix="wmhda-slicer-test-"))
        logic = WMHDomainAdaptLogic(userFolder=folder)
        self.assertTrue(logic.ensureDependencies(askConfirmation=False))
        model = self._tinyModel(folder)
        t1, flair, lesion = self._phantom()

        result = logic.segment(t1, flair, model, device="cpu", probabilityMap=True)
        segmentation = result.segmentation_node
        self.assertIsNotNone(segmentation.GetSegmentation().GetSegmentIdBySegmentName("WMH"))
        self.assertEqual(slicer.util.arrayFromVolume(result.probability_node).shape, lesion.shape)
        self.delayDisplay("Segmented")

        fill_wmh_segmentation(slicer.mrmlScene, segmentation, lesion, flair)  # the user's correction
        exported = segment_to_flair_labelmap(slicer.mrmlScene, segmentation, flair)
        np.testing.assert_array_equal(exported, lesion)
        logic.addToAdaptationSet(t1, flair, segmentation)
        self.assertEqual(len(logic.adaptationSet()), 1)
        with self.assertRaises(ValueError):
            logic.addToAdaptationSet(None, flair, segmentation)

        quick = ["--epochs", "1", "--patches-per-case", "16"]
        newModel = logic.adapt(model, tuneLayers=2, device="cpu", extra=quick)
        self.assertEqual(newModel.parent, logic.modelFolder())
        self.assertIn(newModel, [entry.path for entry in logic.registry().entries()[0]])
        self.delayDisplay("Adapted: " + newModel.name)
        shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("Test passed")
