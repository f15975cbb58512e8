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
from WMHDomainAdaptLogicLib.controller import DEFAULT_DEVICES, Controller, Workspace  # noqa: E402
from WMHDomainAdaptLogicLib.operations import (  # noqa: E402
    adapt_model,
    segment_volumes,
    tune_layers_recommendation,
)
from WMHDomainAdaptLogicLib.registry import ModelRegistry  # noqa: E402
from WMHDomainAdaptLogicLib.segmentation import flair_of  # noqa: E402
from WMHDomainAdaptLogicLib.worker import default_python  # noqa: E402

SHIPPED_MODEL = "Models/wmh_source_synthetic.safetensors"
TERMINOLOGY = "Terminology/WMHDomainAdapt-Terminology.term.json"
SETTINGS = "WMHDomainAdapt"


def resourcePath(relative: str) -> str:
    """Resources are beside the module when installed and at the repository top in a checkout."""
    for base in (MODULE_DIR / "Resources", MODULE_DIR.parent / "Resources"):
        if (base / relative).exists():
            return str(base / relative)
    return str(MODULE_DIR / "Resources" / relative)


def loadTerminology() -> None:
    """Make the WMH segment's terminology known to the Segment Editor's picker (once per session)."""
    terminologies = getattr(slicer.modules, "terminologies", None)
    if terminologies is None:
        return
    names = vtk.vtkStringArray()
    terminologies.logic().GetLoadedTerminologyNames(names)
    from WMHDomainAdaptLogicLib.segmentation import TERMINOLOGY_CONTEXT

    if TERMINOLOGY_CONTEXT not in [names.GetValue(i) for i in range(names.GetNumberOfValues())]:
        terminologies.logic().LoadTerminologyFromFile(resourcePath(TERMINOLOGY))


#
# Module
#


class WMHDomainAdapt(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("WMH Domain Adapt")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Terminologies"]
        self.parent.contributors = ["WMHDomainAdapt developers (research software; see the repository)"]
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
        slicer.app.connect("startupCompleted()", loadTerminology)


#
# Parameter node
#


@parameterNodeWrapper
class WMHDomainAdaptParameterNode:
    t1Volume: vtkMRMLScalarVolumeNode
    flairVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    replaceSegmentation: bool = False
    probabilityMap: bool = False
    tuneLayers: Annotated[int, WithinRange(0, 15)] = 0  # 0 = recommended for the set's size
    modelPath: str = ""
    device: str = "auto"


class SlicerDialogs:
    """The controller's `Dialogs`: Slicer's message boxes."""

    def confirm(self, question: str) -> bool:
        return slicer.util.confirmYesNoDisplay(question)

    def error(self, message: str, details: str = "") -> None:
        slicer.util.errorDisplay(message, detailedText=details or None)


#
# Widget
#


class WMHDomainAdaptWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Wires Qt to `Controller`, which decides everything; the `show_*`, `append_log` and `refresh`
    methods are the controller's `View`."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.controller = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._observedSegmentation = None
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.timeout.connect(self.onWorkerTimer)
        self._statisticsTimer = qt.QTimer()  # recount lesions once the user pauses editing
        self._statisticsTimer.setSingleShot(True)
        self._statisticsTimer.setInterval(800)
        self._statisticsTimer.timeout.connect(self.showResult)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(resourcePath("UI/WMHDomainAdapt.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = WMHDomainAdaptLogic()
        loadTerminology()
        self.controller = Controller(slicer.mrmlScene, self.logic.workspace(), self, SlicerDialogs(),
                                     ensure_dependencies=self.logic.ensureDependencies,
                                     keep_files=lambda: self.ui.keepFilesCheckBox.checked)
        self.fillDevices(DEFAULT_DEVICES)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.segmentButton.connect("clicked(bool)", lambda: self.controller.press_segment())
        self.ui.adaptButton.connect("clicked(bool)", lambda: self.controller.press_adapt())
        self.ui.addCaseButton.connect("clicked(bool)", lambda: self.controller.add_case())
        self.ui.removeCaseButton.connect("clicked(bool)", self.onRemoveCases)
        self.ui.clearSetButton.connect("clicked(bool)", lambda: self.controller.clear_set())
        self.ui.openEditorButton.connect("clicked(bool)", self.onOpenEditor)
        self.ui.showTableButton.connect("clicked(bool)", self.onShowTable)
        self.ui.exportTableButton.connect("clicked(bool)", self.onExportTable)
        self.ui.detectDevicesButton.connect("clicked(bool)", self.onDetectDevices)
        self.ui.refreshModelsButton.connect("clicked(bool)", self.refreshModels)
        self.ui.modelSelector.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.deviceSelector.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)",
                                                   self.observeSegmentation)
        self.ui.openModelFolderButton.connect("clicked(bool)",
                                              lambda: self.openFolder(self.logic.modelFolder()))
        self.ui.openSetFolderButton.connect("clicked(bool)", lambda: self.openFolder(self.logic.setFolder()))
        self.refreshModels()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self.controller is not None:
            self.controller.cleanup()
        self._timer.stop()
        self._statisticsTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.refresh)

    def onSceneStartClose(self, caller, event) -> None:
        self.controller.scene_about_to_close()  # cancels a running worker, drops its result
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.refresh)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.refresh)
            index = self.ui.deviceSelector.findData(self._parameterNode.device)
            self.ui.deviceSelector.setCurrentIndex(max(index, 0))
        self.controller.set_parameters(self._parameterNode)

    # The controller's View

    def show_status(self, text: str) -> None:
        self.ui.statusLabel.text = text

    def show_progress(self, percent) -> None:
        if percent is None:
            self.ui.progressBar.setRange(0, 0)  # busy until the first PROGRESS line
            return
        self.ui.progressBar.setRange(0, 100)
        self.ui.progressBar.value = percent

    def append_log(self, line: str) -> None:
        self.ui.logTextEdit.appendPlainText(line)
        logging.info(line)

    def show_new_model(self, path) -> None:
        self.refreshModels()

    def refresh(self, caller=None, event=None) -> None:
        buttons = self.controller.buttons()
        for widget, button in ((self.ui.segmentButton, buttons.segment), (self.ui.adaptButton, buttons.adapt),
                               (self.ui.addCaseButton, buttons.add_case),
                               (self.ui.removeCaseButton, buttons.remove_cases),
                               (self.ui.clearSetButton, buttons.clear_set),
                               (self.ui.openEditorButton, buttons.open_editor)):
            widget.enabled, widget.text, widget.toolTip = button.enabled, button.text, button.why
        if self.controller.running_task and not self._timer.isActive():
            self._timer.start()
        self.refreshAdaptationSet()
        self.showResult()

    def showResult(self) -> None:
        self.ui.resultLabel.text = self.controller.result_text()
        self.ui.provenanceLabel.text = self.controller.provenance_text()

    # Models and devices

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
            self.append_log(_("Skipped model file: {problem}").format(problem=problem))
        if not entries:
            self.ui.statusLabel.text = _("No model found. Reinstall the extension or check {folder}.").format(
                folder=self.logic.modelFolder())
        index = selector.findData(current) if current else -1
        selector.setCurrentIndex(index if index >= 0 else 0)
        self.onModelChanged()

    def onModelChanged(self, index=None) -> None:
        self.controller.choose_model(self.ui.modelSelector.currentData or "")
        self.ui.modelSelector.toolTip = self.ui.modelSelector.itemData(
            self.ui.modelSelector.currentIndex, qt.Qt.ToolTipRole) or ""

    def fillDevices(self, devices) -> None:
        current = self.ui.deviceSelector.currentData or (self._parameterNode.device if self._parameterNode
                                                         else "auto")
        wasBlocked = self.ui.deviceSelector.blockSignals(True)
        self.ui.deviceSelector.clear()
        for key, label in devices:
            self.ui.deviceSelector.addItem(label, key)
        self.ui.deviceSelector.blockSignals(wasBlocked)
        self.ui.deviceSelector.setCurrentIndex(max(self.ui.deviceSelector.findData(current), 0))
        self.onDeviceChanged()

    def onDetectDevices(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not list the devices."), waitCursor=True):
            self.fillDevices(self.controller.detect_devices())

    def onDeviceChanged(self, index=None) -> None:
        self.controller.choose_device(self.ui.deviceSelector.currentData or "auto")

    # The adaptation set

    def refreshAdaptationSet(self) -> None:
        cases = self.logic.adaptationSet().cases()
        selected = {item.text() for item in self.ui.caseList.selectedItems()}
        self.ui.caseList.clear()
        for case in cases:
            item = qt.QListWidgetItem(case.case_id)
            item.setToolTip(str(case.flair.parent))
            self.ui.caseList.addItem(item)
            item.setSelected(case.case_id in selected)
        layers, reason = tune_layers_recommendation(len(cases))
        self.ui.setSizeLabel.text = _("N = {n} case(s). Recommended: {advice}").format(
            n=len(cases), advice=reason if layers is None else _("tune the last {k} layers").format(k=layers))
        self.ui.setSizeLabel.toolTip = reason

    def onRemoveCases(self) -> None:
        self.controller.remove_cases([item.text() for item in self.ui.caseList.selectedItems()])

    # The result

    def observeSegmentation(self, node=None) -> None:
        """Recount volume and lesions after the user edits the selected segmentation."""
        events = (slicer.vtkSegmentation.SegmentModified, slicer.vtkSegmentation.RepresentationModified)
        if self._observedSegmentation is not None:
            for event in events:
                self.removeObserver(self._observedSegmentation, event, self.onSegmentationEdited)
        self._observedSegmentation = node
        if node is not None:
            for event in events:
                self.addObserver(node, event, self.onSegmentationEdited)
        self.showResult()

    def onSegmentationEdited(self, caller=None, event=None) -> None:
        self._statisticsTimer.start()

    def onOpenEditor(self) -> None:
        node = self._parameterNode
        segmentation = node.outputSegmentation
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.SegmentEditorWidget.editor
        editor.setSegmentationNode(segmentation)
        editor.setSourceVolumeNode(flair_of(segmentation) or node.flairVolume)

    def onShowTable(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not make the statistics table."), waitCursor=True):
            table = self.controller.update_statistics_table()
            slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()

    def onExportTable(self) -> None:
        path = qt.QFileDialog.getSaveFileName(None, _("Export WMH statistics"), "wmh_statistics.csv",
                                              _("CSV files (*.csv)"))
        if path:
            with slicer.util.tryWithErrorDisplay(_("Could not export the statistics."), waitCursor=True):
                written = self.controller.export_statistics(path)
                self.append_log(_("Statistics written to {path}").format(path=written))

    # Background work

    def onWorkerTimer(self) -> None:
        if not self.controller.poll():
            self._timer.stop()

    def openFolder(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(folder)))


#
# Logic
#


class WMHDomainAdaptLogic(ScriptedLoadableModuleLogic):
    """Usable without the widget (Python console, scripts, tests).

    Methods raise ValueError with a message for the user on bad input. `segment` and `adapt` block
    until the worker ends (the widget runs the same steps in the background through `Controller`).
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

    def workspace(self) -> Workspace:
        return Workspace(self.userFolder(), [Path(resourcePath(SHIPPED_MODEL))], default_python())

    def modelFolder(self) -> Path:
        return self.workspace().model_folder

    def setFolder(self) -> Path:
        return self.workspace().set_folder

    def registry(self) -> ModelRegistry:
        return self.workspace().registry()

    def adaptationSet(self) -> AdaptationSet:
        return self.workspace().adaptation_set()

    def ensureDependencies(self, askConfirmation=None) -> bool:
        """Install torch (through the PyTorch extension) and safetensors when the user acts."""
        problem = dependencies.torch_problem()
        if problem:
            raise ValueError(problem)
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

    def addToAdaptationSet(self, t1Volume, flairVolume, segmentationNode):
        return add_case_from_nodes(slicer.mrmlScene, self.adaptationSet(), t1Volume, flairVolume,
                                   segmentationNode)

    def segment(self, t1Volume, flairVolume, modelPath, device="auto", probabilityMap=False,
                outputSegmentation=None):
        """Blocking Segment; returns a result with segmentation_node, probability_node, statistics.

        Without `outputSegmentation` the result is a new segmentation; with one (of this FLAIR), its
        WMH segment is replaced and the previous one kept, renamed.
        """
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
        self.setUp()
        self.test_ControllerKeepsTheClinicansWork()
        self.setUp()
        self.test_TerminologyIsKnownToThePicker()

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

    def test_ControllerKeepsTheClinicansWork(self):
        """The widget's controller in this Slicer's API: new result per run, replace asks and keeps
        the previous segment, provenance, statistics, and closing the scene cancels a run."""
        import tempfile
        import time

        from WMHDomainAdaptLogicLib.controller import Controller, State
        from WMHDomainAdaptLogicLib.segmentation import WMH_TERMINOLOGY

        class Answers:
            def __init__(self):
                self.questions, self.errors = [], []

            def confirm(self, question):
                self.questions.append(question)
                return True

            def error(self, message, details=""):
                self.errors.append(message)

        class Quiet:
            def show_status(self, text): pass
            def show_progress(self, percent): pass
            def append_log(self, line): pass
            def show_new_model(self, path): pass
            def refresh(self): pass

        folder = Path(tempfile.mkdtemp(prefix="wmhda-slicer-controller-"))
        logic = WMHDomainAdaptLogic(userFolder=folder)
        self.assertTrue(logic.ensureDependencies(askConfirmation=False))
        model = self._tinyModel(folder)
        t1, flair, lesion = self._phantom()
        answers = Answers()
        controller = Controller(slicer.mrmlScene, logic.workspace(), Quiet(), answers)
        parameters = logic.getParameterNode()
        parameters.t1Volume, parameters.flairVolume, parameters.device = t1, flair, "cpu"
        controller.choose_model(str(model))
        controller.set_parameters(parameters)

        def run():
            controller.press_segment()
            while controller.poll():
                slicer.app.processEvents()
                time.sleep(0.05)
            self.assertEqual(controller.state, State.IDLE)
            return parameters.outputSegmentation

        first, second = run(), run()
        self.assertIsNot(first, second)
        segment = first.GetSegmentation().GetSegment(first.GetSegmentation().GetSegmentIdBySegmentName("WMH"))
        tag = vtk.reference("")
        self.assertTrue(segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag))
        self.assertEqual(tag.get(), WMH_TERMINOLOGY)
        self.assertEqual(first.GetAttribute("WMHDomainAdapt.model"), model.name)
        self.assertIn("WMH volume", controller.result_text())
        parameters.replaceSegmentation = True
        self.assertIs(run(), second)
        self.assertEqual(len(answers.questions), 1)
        self.assertEqual(second.GetSegmentation().GetNumberOfSegments(), 2)
        self.assertEqual(controller.update_statistics_table().GetNumberOfRows(), 2)

        controller.press_segment()
        controller.scene_about_to_close()
        self.assertEqual(controller.state, State.IDLE)
        self.assertEqual(answers.errors, [])
        shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("Controller test passed")

    def test_TerminologyIsKnownToThePicker(self):
        from WMHDomainAdaptLogicLib.segmentation import TERMINOLOGY_CONTEXT

        loadTerminology()
        names = vtk.vtkStringArray()
        slicer.modules.terminologies.logic().GetLoadedTerminologyNames(names)
        self.assertIn(TERMINOLOGY_CONTEXT, [names.GetValue(i) for i in range(names.GetNumberOfValues())])
