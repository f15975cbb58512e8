"""`wmhda evaluate` end to end on label files written to a temporary folder."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import SimpleITK as sitk

from WMHDomainAdaptLib import cli

SHAPE = (12, 40, 48)  # z, y, x
SPACING = (1.0, 1.2, 3.0)


def lesion(shift_x: int = 0, present: bool = True) -> np.ndarray:
    """A 3x6x6 box; shifted by one voxel it overlaps the original with Dice 5/6."""
    volume = np.zeros(SHAPE, np.uint8)
    if present:
        volume[4:7, 10:16, 10 + shift_x:16 + shift_x] = 1
    return volume


def write(array: np.ndarray, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    sitk.WriteImage(image, str(path))
    return path


def read_csv(path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["case"]: row for row in csv.DictReader(handle)}


def test_a_single_pair_prints_its_row_and_the_mean_row(tmp_path, capsys):
    pred = write(lesion(), tmp_path / "p.nii.gz")
    ref = write(lesion(), tmp_path / "sub-007_wmh.nii.gz")
    assert cli.main(["evaluate", "--pred", str(pred), "--ref", str(ref)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["case", "DSC", "HD95", "mm", "AVD", "%", "recall", "F1", "ref", "mL",
                                "pred", "mL"]
    assert lines[2].split()[:6] == ["sub-007", "1.000", "0.00", "0.0", "1.000", "1.000"]
    assert any(line.split()[:2] == ["mean", "1.000"] for line in lines)


def test_two_folders_are_matched_by_case_id_and_written_to_csv(tmp_path, capsys):
    for case_id, shift in (("sub-001", 0), ("sub-002", 1)):
        write(lesion(), tmp_path / "ref" / f"{case_id}.nii.gz")
        write(lesion(shift), tmp_path / "pred" / f"{case_id}_pred.nii.gz")
    out = tmp_path / "results" / "metrics.csv"
    assert cli.main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                     "--csv", str(out)]) == 0
    rows = read_csv(out)
    assert list(rows) == ["sub-001", "sub-002", "mean", "median"]
    assert float(rows["sub-001"]["dsc"]) == 1.0
    assert float(rows["sub-002"]["dsc"]) == pytest.approx(5 / 6)
    assert float(rows["sub-002"]["hd95"]) == pytest.approx(1.0)  # one voxel along x, 1.0 mm
    assert float(rows["mean"]["dsc"]) == pytest.approx((1 + 5 / 6) / 2)
    assert rows["sub-002"]["prediction"].endswith("sub-002_pred.nii.gz")
    assert sorted(p.name for p in out.parent.iterdir()) == ["metrics.csv"]  # no temporary file left
    assert "sub-002" in capsys.readouterr().out


def test_case_folders_in_the_dataset_layout_are_matched_to_prediction_folders(tmp_path, capsys):
    for case_id in ("a1", "b2"):
        case = tmp_path / "data" / case_id
        write(lesion(), case / f"{case_id}_t1.nii.gz")
        write(lesion(), case / f"{case_id}_flair.nii.gz")
        write(lesion(), case / f"{case_id}_wmh.nii.gz")
        write(lesion(1), tmp_path / "pred" / case_id / "segmentation.nrrd")
    assert cli.main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "data")]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [row[:2] for row in rows if row[0] in ("a1", "b2")] == [["a1", "0.833"], ["b2", "0.833"]]


def test_a_manifest_supplies_the_labels_and_unlabelled_cases_are_skipped_with_a_note(tmp_path, capsys):
    write(lesion(), tmp_path / "labels" / "x_wmh.nii.gz")
    write(lesion(1), tmp_path / "pred" / "x.nii.gz")
    manifest = tmp_path / "cases.csv"
    manifest.write_text("id,t1,flair,label,mask\n"
                        "x,x_t1.nii.gz,x_flair.nii.gz,labels/x_wmh.nii.gz,\n"
                        "y,y_t1.nii.gz,y_flair.nii.gz,,\n")
    out = tmp_path / "m.csv"
    assert cli.main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(manifest),
                     "--csv", str(out)]) == 0
    assert list(read_csv(out)) == ["x", "mean", "median"]
    assert "1 case(s) without a label skipped: y" in capsys.readouterr().err


def test_a_case_without_a_prediction_is_an_error_naming_the_case(tmp_path, capsys):
    for case_id in ("sub-001", "sub-002"):
        write(lesion(), tmp_path / "ref" / f"{case_id}.nii.gz")
    write(lesion(), tmp_path / "pred" / "sub-001.nii.gz")
    out = tmp_path / "never.csv"
    assert cli.main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                     "--csv", str(out)]) == 2
    error = capsys.readouterr().err
    assert "no prediction for 1 case(s): sub-002" in error and error.count("\n") == 1
    assert not out.exists()


def test_an_empty_prediction_shows_nan_hd95_and_the_summary_says_how_many_cases_it_rests_on(
        tmp_path, capsys):
    write(lesion(), tmp_path / "ref" / "full.nii.gz")
    write(lesion(), tmp_path / "ref" / "none.nii.gz")
    write(lesion(), tmp_path / "pred" / "full.nii.gz")
    write(lesion(present=False), tmp_path / "pred" / "none.nii.gz")
    out = tmp_path / "m.csv"
    assert cli.main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                     "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "HD95 mm: mean and median over 1 of 2 cases" in printed
    rows = read_csv(out)
    assert math.isnan(float(rows["none"]["hd95"]))
    assert float(rows["mean"]["hd95"]) == 0.0 and float(rows["mean"]["dsc"]) == 0.5


def test_one_prediction_file_for_several_reference_cases_is_refused(tmp_path, capsys):
    for case_id in ("a", "b"):
        write(lesion(), tmp_path / "ref" / f"{case_id}.nii.gz")
    pred = write(lesion(), tmp_path / "p.nii.gz")
    assert cli.main(["evaluate", "--pred", str(pred), "--ref", str(tmp_path / "ref")]) == 2
    assert "give a folder of predictions" in capsys.readouterr().err


def test_the_segment_commands_batch_output_names_match_and_probability_maps_are_not_taken(tmp_path, capsys):
    write(lesion(), tmp_path / "ref" / "sub-001_wmh.nii.gz")
    write(lesion(1), tmp_path / "pred" / "sub-001_wmh_pred.nii.gz")
    write(lesion(), tmp_path / "pred" / "sub-001_wmh_prob.nii.gz")
    out = tmp_path / "m.csv"
    assert cli.main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                     "--csv", str(out)]) == 0
    assert read_csv(out)["sub-001"]["prediction"].endswith("sub-001_wmh_pred.nii.gz")


def test_a_prediction_with_another_header_is_scored_voxel_by_voxel_with_a_note(tmp_path, capsys):
    ref = write(lesion(), tmp_path / "a.nii.gz")
    pred = tmp_path / "p.nii.gz"
    image = sitk.GetImageFromArray(lesion())
    image.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))  # LPS vs RAS, say
    sitk.WriteImage(image, str(pred))
    assert cli.main(["evaluate", "--pred", str(pred), "--ref", str(ref)]) == 0
    captured = capsys.readouterr()
    assert "case a: the prediction's spacing/origin/direction differ" in captured.err
    assert captured.out.splitlines()[2].split()[:2] == ["a", "1.000"]


def test_prediction_sub_folders_may_hold_a_probability_map_beside_the_mask(tmp_path, capsys):
    write(lesion(), tmp_path / "ref" / "c1.nii.gz")
    write(lesion(), tmp_path / "ref" / "c2.nii.gz")
    write(lesion(1), tmp_path / "pred" / "c1" / "c1_wmh_pred.nii.gz")
    write(lesion(), tmp_path / "pred" / "c1" / "c1_wmh_prob.nii.gz")
    write(lesion(), tmp_path / "pred" / "c2" / "seg.nrrd")
    write(lesion(), tmp_path / "pred" / "c2" / "c2_wmh_prob.nii.gz")
    out = tmp_path / "m.csv"
    assert cli.main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                     "--csv", str(out)]) == 0
    rows = read_csv(out)
    assert rows["c1"]["prediction"].endswith("c1_wmh_pred.nii.gz") and rows["c2"]["dsc"] == "1.0"
