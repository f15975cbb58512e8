"""The headless batch script: argument parsing, exit codes and the module's code path, without Slicer."""

import csv

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
import torch
import wmh_batch
from mrml_testing import make_scene
from phantom import write_phantom_case

from WMHDomainAdaptLib.cli import main as wmhda
from WMHDomainAdaptLib.dataset import write_manifest
from WMHDomainAdaptLib.io import read_image, same_grid
from WMHDomainAdaptLib.model import WMHNet
from WMHDomainAdaptLib.modelfile import build_metadata, read_metadata, save_model
from WMHDomainAdaptLib.preprocess import PreprocessConfig


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    torch.manual_seed(0)
    network = WMHNet()
    metadata = build_metadata(network, PreprocessConfig(n4=False), 0.5, {"domain": "source"})
    return save_model(tmp_path_factory.mktemp("models") / "source.safetensors", network, metadata)


def test_segment_writes_each_case_keeps_going_past_a_broken_one_and_exits_1(source, tmp_path):
    good = write_phantom_case(tmp_path / "cases", 3)
    broken = write_phantom_case(tmp_path / "cases", 4)
    broken.flair.write_bytes(b"not an image")
    manifest = write_manifest([good, broken], tmp_path / "cases" / "manifest.csv")
    out = tmp_path / "out"
    mrml = make_scene()

    code = wmh_batch.main(["segment", "--model", str(source), "--cases", str(manifest),
                           "--out-dir", str(out), "--device", "cpu"], scene=mrml.scene)

    assert code == wmh_batch.EXIT_SOME_FAILED
    rows = list(csv.DictReader(open(out / "wmh_volumes.csv")))
    assert [r["id"] for r in rows] == ["phantom003", "phantom004"]
    assert rows[0]["error"] == "" and "cannot read" in rows[1]["error"]
    prediction = read_image(out / "phantom003_wmh_pred.nii.gz")
    assert same_grid(prediction, read_image(good.flair))
    segmentation = slicerio.read_segmentation(str(out / "phantom003_wmh.seg.nrrd"))
    assert [s["name"] for s in segmentation["segments"]] == ["WMH"]
    assert mrml.scene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode") is None  # scene left clean

    assert wmhda(["segment", "--model", str(source), "--t1", str(good.t1), "--flair", str(good.flair),
                  "--out", str(tmp_path / "cli.nii.gz"), "--device", "cpu"]) == 0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(prediction),
                                  sitk.GetArrayFromImage(read_image(tmp_path / "cli.nii.gz")))


def test_adapt_writes_a_new_validated_model_and_exits_0(source, tmp_path):
    case = write_phantom_case(tmp_path / "cases", 5)
    out = tmp_path / "adapted.safetensors"
    code = wmh_batch.main(["adapt", "--model", str(source), "--cases", str(tmp_path / "cases"),
                           "--out", str(out),
                           "--tune-layers", "2", "--device", "cpu",
                           "--worker-args", "--epochs", "1", "--patches-per-case", "16"])
    assert code == wmh_batch.EXIT_OK
    metadata = read_metadata(out)
    assert metadata["tune_layers"] == 2 and metadata["training"]["case_ids"] == [case.case_id]


@pytest.mark.parametrize("argv,message", [
    (["segment", "--model", "m.safetensors"], "required"),
    (["adapt", "--model", "m", "--cases", "c", "--out", "o", "--tune-layers", "0"], "at least 1"),
    (["segment", "--model", "MISSING", "--cases", ".", "--out-dir", "o"], "model file not found"),
    (["adapt", "--model", "SOURCE", "--cases", "EMPTY", "--out", "SOURCE"], "already exists"),
    (["adapt", "--model", "SOURCE", "--cases", "EMPTY", "--out", "NEW"], "dataset holds no case"),
])
def test_bad_arguments_or_input_exit_2_with_a_message(source, tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    names = {"SOURCE": str(source), "EMPTY": str(tmp_path / "empty"),
             "NEW": str(tmp_path / "new.safetensors"),
             "MISSING": str(tmp_path / "missing.safetensors")}
    code = wmh_batch.main([names.get(a, a) for a in argv], scene=make_scene().scene)
    assert code == wmh_batch.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_a_cut_off_flair_in_a_batch_is_refused_by_the_librarys_check_not_read_as_zeros(source, tmp_path):
    good = write_phantom_case(tmp_path / "cases", 3)
    cut = write_phantom_case(tmp_path / "cases", 5, suffix=".nii")
    data = cut.flair.read_bytes()
    cut.flair.write_bytes(data[: len(data) // 2])  # Slicer's reader alone fills the missing half with 0
    manifest = write_manifest([good, cut], tmp_path / "cases" / "manifest.csv")
    out = tmp_path / "out"

    code = wmh_batch.main(["segment", "--model", str(source), "--cases", str(manifest),
                           "--out-dir", str(out), "--device", "cpu"], scene=make_scene().scene)

    assert code == wmh_batch.EXIT_SOME_FAILED
    rows = {r["id"]: r for r in csv.DictReader(open(out / "wmh_volumes.csv"))}
    assert "cut off" in rows["phantom005"]["error"] and not (out / "phantom005_wmh_pred.nii.gz").exists()
    assert rows["phantom003"]["error"] == ""
