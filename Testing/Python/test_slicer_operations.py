"""Segment and Adapt through the module's Logic code path: real MRML, a real worker process.

The worker is `python -m WMHDomainAdaptLib` with this interpreter standing in for PythonSlicer,
on phantom scans and a tiny untrained network, so each run takes seconds on a CPU.
"""

import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from mrml_testing import load_volume, make_scene, write_ras_nrrd
from phantom import phantom_arrays, phantom_image
from slicer.util import arrayFromVolume
from WMHDomainAdaptLogicLib.adaptation_set import AdaptationSet, add_case_from_nodes
from WMHDomainAdaptLogicLib.operations import (
    WorkerFailed,
    adapt_model,
    check_worker_result,
    prepare_adapt,
    segment_volumes,
)
from WMHDomainAdaptLogicLib.registry import ModelRegistry
from WMHDomainAdaptLogicLib.segmentation import fill_wmh_segmentation, segment_to_flair_labelmap
from WMHDomainAdaptLogicLib.worker import WorkerProcess

from WMHDomainAdaptLib.inference import segment
from WMHDomainAdaptLib.model import WMHNet
from WMHDomainAdaptLib.modelfile import build_metadata, file_sha256, load_model, read_metadata, save_model
from WMHDomainAdaptLib.preprocess import PreprocessConfig

PYTHON = sys.executable  # stands in for PythonSlicer
QUICK = ["--epochs", "1", "--patches-per-case", "16"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    torch.manual_seed(0)
    network = WMHNet()
    metadata = build_metadata(network, PreprocessConfig(n4=False), 0.5, {"domain": "source", "n_cases": 3})
    folder = tmp_path_factory.mktemp("shipped")
    return save_model(folder / "wmh_source_synthetic.safetensors", network, metadata)


@pytest.fixture
def mrml():
    return make_scene()


@pytest.fixture
def scan(mrml, tmp_path):
    """T1 (LPS NIfTI) and FLAIR (RAS NRRD) nodes of one oblique anisotropic phantom, and its label."""
    t1, flair, label = phantom_arrays(7)
    sitk.WriteImage(phantom_image(t1), str(tmp_path / "t1.nii.gz"))
    write_ras_nrrd(phantom_image(flair), tmp_path / "flair.nrrd")
    return (load_volume(mrml.scene, tmp_path / "t1.nii.gz", "T1"),
            load_volume(mrml.scene, tmp_path / "flair.nrrd", "FLAIR"), label)


def test_segment_through_the_worker_equals_the_library_result_on_the_flair_grid(mrml, scan, source, tmp_path):
    t1_node, flair_node, _ = scan
    result = segment_volumes(mrml.scene, t1_node, flair_node, source, PYTHON, device="cpu", probability=True)

    t1, flair, _ = phantom_arrays(7)
    expected = segment(load_model(source), phantom_image(t1), phantom_image(flair), device="cpu")
    mask = segment_to_flair_labelmap(mrml.scene, result.segmentation_node, flair_node)
    np.testing.assert_array_equal(mask, sitk.GetArrayFromImage(expected.mask))
    assert result.statistics.count == expected.lesion_count
    assert result.statistics.volume_ml == pytest.approx(expected.lesion_volume_ml)
    assert result.probability_node.GetDisplayNode() is not None
    np.testing.assert_allclose(arrayFromVolume(result.probability_node),
                               sitk.GetArrayFromImage(expected.probability), atol=1e-4)


def test_segment_passes_on_the_workers_warning_about_a_spacing_far_from_training(mrml, scan, tmp_path):
    t1_node, flair_node, _ = scan
    in_plane = list(flair_node.GetSpacing())
    trained_spacing = [2 * in_plane[0], 2 * in_plane[1], in_plane[2]]
    network = WMHNet()
    metadata = build_metadata(network, PreprocessConfig(n4=False), 0.5, {"flair_spacing": trained_spacing})
    model = save_model(tmp_path / "coarse.safetensors", network, metadata)
    result = segment_volumes(mrml.scene, t1_node, flair_node, model, PYTHON, device="cpu")
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("warning: FLAIR in-plane spacing")
    assert "far from the model's training spacing" in result.warnings[0]
    assert result.segmentation_node is not None


def test_segment_at_the_training_spacing_has_no_warning(mrml, scan, tmp_path):
    t1_node, flair_node, _ = scan
    network = WMHNet()
    metadata = build_metadata(network, PreprocessConfig(n4=False), 0.5,
                              {"flair_spacing": list(flair_node.GetSpacing())})
    model = save_model(tmp_path / "same.safetensors", network, metadata)
    assert segment_volumes(mrml.scene, t1_node, flair_node, model, PYTHON, device="cpu").warnings == []


def test_adapt_through_the_worker_registers_a_new_model_and_keeps_the_parent(mrml, scan, source, tmp_path):
    t1_node, flair_node, label = scan
    corrected = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "corrected")
    fill_wmh_segmentation(mrml.scene, corrected, label, flair_node)
    adaptation_set = AdaptationSet(tmp_path / "set")
    add_case_from_nodes(mrml.scene, adaptation_set, t1_node, flair_node, corrected)
    registry = ModelRegistry(tmp_path / "user", [source])
    parent_hash = file_sha256(source)
    lines = []

    path = adapt_model(adaptation_set, source, registry, PYTHON, tune_layers=2, device="cpu", extra=QUICK,
                       on_line=lines.append)

    assert path.parent == tmp_path / "user" and file_sha256(source) == parent_hash
    metadata = read_metadata(path)
    assert metadata["parent_sha256"] == parent_hash and metadata["tune_layers"] == 2
    assert metadata["training"]["n_cases"] == 1
    assert any(line.startswith("PROGRESS task=train") for line in lines)
    assert [e.path for e in registry.entries()[0]] == [source, path]


def test_cancelled_adaptation_changes_nothing(mrml, scan, source, tmp_path):
    t1_node, flair_node, label = scan
    corrected = mrml.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "corrected")
    fill_wmh_segmentation(mrml.scene, corrected, label, flair_node)
    adaptation_set = AdaptationSet(tmp_path / "set")
    add_case_from_nodes(mrml.scene, adaptation_set, t1_node, flair_node, corrected)
    slow = ["--epochs", "50", "--patches-per-case", "64"]  # long enough to be stopped while training
    job = prepare_adapt(adaptation_set, source, PYTHON, tmp_path / "work", 2, "cpu", slow)
    worker = WorkerProcess(job.command, job.env)
    deadline = time.monotonic() + 120
    while not any(line.startswith("PROGRESS task=train") for line in worker.log):
        assert not worker.finished and time.monotonic() < deadline, "\n".join(worker.log[-5:])
        worker.drain()
        time.sleep(0.05)

    worker.cancel()  # midway: the library's training loop is running
    worker.wait(timeout=30)

    with pytest.raises(WorkerFailed, match="Cancelled; nothing was changed"):
        check_worker_result(worker)
    assert not job.output.exists() and not (tmp_path / "user").exists()


def test_model_altered_after_saving_fails_with_the_validation_message(mrml, scan, source, tmp_path):
    tampered = tmp_path / "tampered.safetensors"
    data = bytearray(source.read_bytes())
    data[-3] ^= 0xFF
    tampered.write_bytes(bytes(data))
    t1_node, flair_node, _ = scan
    with pytest.raises(WorkerFailed, match="altered"):
        segment_volumes(mrml.scene, t1_node, flair_node, tampered, PYTHON, device="cpu")
    assert mrml.scene.GetFirstNodeByClass("vtkMRMLSegmentationNode") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_gpu_requested_without_a_gpu_says_so(mrml, scan, source):
    t1_node, flair_node, _ = scan
    with pytest.raises(WorkerFailed, match="no usable CUDA GPU"):
        segment_volumes(mrml.scene, t1_node, flair_node, source, PYTHON, device="cuda")


def test_adapting_with_an_empty_set_is_refused_before_any_work(source, tmp_path):
    with pytest.raises(ValueError, match="N = 0"):
        prepare_adapt(AdaptationSet(tmp_path / "set"), source, PYTHON, tmp_path / "work")


def test_missing_or_far_apart_inputs_are_refused_before_the_worker_starts(mrml, scan, source, tmp_path):
    t1_node, flair_node, _ = scan
    with pytest.raises(ValueError, match="select a T1"):
        segment_volumes(mrml.scene, None, flair_node, source, PYTHON)
    far = phantom_image(phantom_arrays(1)[0], origin=(500.0, 500.0, 500.0))
    sitk.WriteImage(far, str(tmp_path / "far.nrrd"))
    far_node = load_volume(mrml.scene, tmp_path / "far.nrrd", "far T1")
    with pytest.raises(ValueError, match="do not overlap"):
        segment_volumes(mrml.scene, far_node, flair_node, source, PYTHON)
    with pytest.raises(ValueError, match="model file not found"):
        segment_volumes(mrml.scene, t1_node, flair_node, tmp_path / "missing.safetensors", PYTHON)
