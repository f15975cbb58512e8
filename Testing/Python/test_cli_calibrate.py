"""`wmhda calibrate` end to end on phantoms, and how `segment` and `adapt` treat its rule."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from phantom import write_phantom_case

from WMHDomainAdaptLib.cli import main
from WMHDomainAdaptLib.dataset import write_manifest
from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.modelfile import file_sha256, load_model, read_metadata, save_model
from WMHDomainAdaptLib.scan_threshold import ScanThreshold

FAST_TRAIN = ["--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "16", "--patch-size", "32",
              "--no-n4", "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A phantom-trained model, and 10 more labelled phantoms to calibrate it on."""
    root = tmp_path_factory.mktemp("calibrate")
    cases = [write_phantom_case(root / "cases", seed) for seed in range(13)]
    write_manifest(cases[:2], root / "train.csv")
    write_manifest(cases[2:3], root / "val.csv")
    write_manifest(cases[3:], root / "calibration.csv")
    write_manifest(cases[3:5], root / "two.csv")
    model = root / "source.safetensors"
    assert main(["train", "--train", str(root / "train.csv"), "--val", str(root / "val.csv"),
                 "--out", str(model), *FAST_TRAIN]) == 0
    return root, cases, model


@pytest.fixture(scope="module")
def calibrated(workspace):
    root, _, model = workspace
    before = file_sha256(model)
    out = root / "calibrated.safetensors"
    assert main(["calibrate", "--model", str(model), "--cases", str(root / "calibration.csv"),
                 "--out", str(out), "--core-probability", "0.3", "--device", "cpu"]) == 0
    assert file_sha256(model) == before
    return out


def test_calibrate_writes_a_new_file_with_the_rule_its_scans_and_its_parent(workspace, calibrated, capsys):
    _, cases, model = workspace
    metadata = read_metadata(calibrated)
    rule = ScanThreshold.from_dict(metadata["scan_threshold"])
    assert rule.core_probability == 0.3
    assert metadata["calibration"]["case_ids"] == [case.case_id for case in cases[3:]]
    # (the rule's in-sample Dice beats the fixed threshold's by construction of the fit, so it is not
    # asserted here; test_behaviour_claims plants a contrast dependence and checks it out of sample)
    assert metadata["parent_sha256"] == file_sha256(model)
    assert metadata["training"] == read_metadata(model)["training"]
    parent, child = load_model(model).network.state_dict(), load_model(calibrated).network.state_dict()
    assert all(torch.equal(parent[key], child[key]) for key in parent)


def with_rule(model_path, rule: dict, out):
    """A copy of a model file whose metadata holds the given per-scan rule."""
    model = load_model(model_path)
    save_model(out, model.network, {**model.metadata, "scan_threshold": rule})
    return out


def test_segment_cuts_each_scan_at_the_threshold_its_rule_gives(workspace, tmp_path, capsys):
    _, cases, model = workspace
    rule = ScanThreshold(intercept=0.8, slope=0.0, core_probability=0.0, min_core_voxels=1)
    ruled = with_rule(model, rule.to_dict(), tmp_path / "ruled.safetensors")
    mask_path, prob_path = tmp_path / "mask.nii.gz", tmp_path / "prob.nii.gz"
    assert main(["segment", "--model", str(ruled), "--t1", str(cases[0].t1), "--flair", str(cases[0].flair),
                 "--out", str(mask_path), "--prob", str(prob_path), "--device", "cpu"]) == 0
    assert "at threshold 0.80" in capsys.readouterr().out
    probability = sitk.GetArrayFromImage(sitk.ReadImage(str(prob_path)))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path)))
    assert np.array_equal(mask == 1, probability >= 0.8)
    assert load_model(model).threshold != 0.8


def test_a_malformed_rule_is_refused_when_the_model_is_loaded(workspace, tmp_path):
    _, _, model = workspace
    for number, rule in enumerate(({"intercept": 0.1}, {"intercept": "high", "slope": 0.1},
                                   {"intercept": 0.1, "slope": 0.1, "offset": 2})):
        broken = with_rule(model, rule, tmp_path / f"broken{number}.safetensors")
        with pytest.raises(InputError, match="per-scan threshold rule is malformed"):
            load_model(broken)


def test_adapting_a_calibrated_model_leaves_the_source_rule_behind(workspace, calibrated, tmp_path):
    root = workspace[0]
    out = tmp_path / "adapted.safetensors"
    assert main(["adapt", "--model", str(calibrated), "--cases", str(root / "two.csv"), "--tune-layers", "2",
                 "--out", str(out), "--epochs", "1", "--patches-per-case", "16", "--batch-size", "16",
                 "--patch-size", "32", "--device", "cpu", "--threads", "1"]) == 0
    metadata = read_metadata(out)
    assert "scan_threshold" not in metadata and metadata["parent_sha256"] == file_sha256(calibrated)


def test_calibrate_refuses_too_few_scans_or_an_existing_output(workspace, calibrated, capsys):
    root, _, model = workspace
    assert main(["calibrate", "--model", str(model), "--cases", str(root / "two.csv"),
                 "--out", str(root / "few.safetensors"), "--device", "cpu"]) == 2
    assert "needs at least 10" in capsys.readouterr().err
    assert not (root / "few.safetensors").exists()
    before = file_sha256(calibrated)
    assert main(["calibrate", "--model", str(model), "--cases", str(root / "calibration.csv"),
                 "--out", str(calibrated), "--device", "cpu"]) == 2
    assert "already exists" in capsys.readouterr().err and file_sha256(calibrated) == before
