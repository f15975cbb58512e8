"""Datasets: folder layouts are recognised, manifests are validated, both give the same cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from WMHDomainAdaptLib.dataset import Case, load_cases, load_datasets, write_manifest
from WMHDomainAdaptLib.errors import InputError


def touch_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5), np.uint8)), str(path))
    return path


def case_folder(root: Path, case_id: str, roles=("t1", "flair", "wmh", "mask")) -> Path:
    for role in roles:
        touch_image(root / case_id / f"{case_id}_{role}.nii.gz")
    return root / case_id


def test_a_folder_of_case_folders_gives_one_case_per_folder_with_every_role(tmp_path):
    case_folder(tmp_path, "sub-002")
    case_folder(tmp_path, "sub-001", roles=("T1", "FLAIR"))
    cases = load_cases(tmp_path)
    assert [c.case_id for c in cases] == ["sub-001", "sub-002"]
    assert cases[0].t1.name == "sub-001_T1.nii.gz" and cases[0].label is None and cases[0].mask is None
    assert (cases[1].label.name, cases[1].mask.name) == ("sub-002_wmh.nii.gz", "sub-002_mask.nii.gz")


def test_a_single_case_folder_is_one_case_named_after_the_folder(tmp_path):
    folder = case_folder(tmp_path, "sub-009")
    assert [c.case_id for c in load_cases(folder)] == ["sub-009"]


def test_an_id_ending_in_t1_does_not_make_the_flair_look_like_a_t1(tmp_path):
    case = load_cases(case_folder(tmp_path, "patient1"))[0]
    assert (case.t1.name, case.flair.name) == ("patient1_t1.nii.gz", "patient1_flair.nii.gz")


def test_a_label_or_mask_named_after_its_image_is_not_taken_for_the_image(tmp_path):
    folder = tmp_path / "s1"
    for name in ("s1_T1w.nrrd", "s1_FLAIR.nrrd", "s1_flair_wmh.nrrd", "s1_t1_brainmask.nrrd"):
        touch_image(folder / name)
    case = load_cases(folder)[0]
    assert [p.name for p in (case.t1, case.flair, case.label, case.mask)] == \
        ["s1_T1w.nrrd", "s1_FLAIR.nrrd", "s1_flair_wmh.nrrd", "s1_t1_brainmask.nrrd"]


def test_a_case_folder_without_a_flair_is_named_in_the_error(tmp_path):
    case_folder(tmp_path, "sub-001")
    case_folder(tmp_path, "sub-002", roles=("t1",))
    with pytest.raises(InputError, match="sub-002: no image file with flair in its name"):
        load_cases(tmp_path)


def test_two_candidate_t1_files_are_reported_as_ambiguous(tmp_path):
    folder = case_folder(tmp_path, "sub-001", roles=("t1", "flair", "t1_rescan"))
    with pytest.raises(InputError, match="several files match t1"):
        load_cases(folder)


def test_a_missing_dataset_an_empty_folder_and_a_non_csv_file_are_refused(tmp_path):
    with pytest.raises(InputError, match="dataset not found"):
        load_cases(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="dataset holds no case"):
        load_cases(tmp_path / "empty")
    with pytest.raises(InputError, match="must be a manifest .csv"):
        load_cases(touch_image(tmp_path / "t1.nii.gz"))


def write_csv(path: Path, text: str, encoding="utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def test_a_manifest_resolves_relative_paths_from_its_own_folder_and_keeps_absolute_ones(tmp_path):
    absolute = tmp_path / "elsewhere" / "b_t1.nii.gz"
    (tmp_path / "lists").mkdir()
    manifest = write_csv(tmp_path / "lists" / "cases.csv",
                         "id,t1,flair,label,mask\n"
                         "a,../img/a_t1.nii.gz,../img/a_flair.nii.gz,../img/a_wmh.nii.gz,\n"
                         f"b,{absolute},b_flair.nii.gz,,\n")
    a, b = load_cases(manifest)
    assert a.t1 == tmp_path / "lists" / "../img/a_t1.nii.gz" and a.label.name == "a_wmh.nii.gz"
    assert a.mask is None and b.label is None
    assert b.t1 == absolute and b.flair == tmp_path / "lists" / "b_flair.nii.gz"


def test_a_manifest_without_label_and_mask_columns_is_accepted(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "id,t1,flair\nx,x_t1.nii.gz,x_flair.nii.gz\n")
    assert load_cases(manifest)[0].label is None


def test_a_manifest_missing_a_required_column_names_it(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "id,t1,label\nx,x_t1.nii.gz,x_wmh.nii.gz\n")
    with pytest.raises(InputError, match="lacks column.s. flair; expected id,t1,flair,label,mask"):
        load_cases(manifest)


def test_a_manifest_saved_by_excel_with_a_byte_order_mark_is_read(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "id,t1,flair\nx,x_t1.nii.gz,x_flair.nii.gz\n",
                         encoding="utf-8-sig")
    assert load_cases(manifest)[0].case_id == "x"


def test_a_manifest_row_with_an_empty_flair_is_refused_with_its_line(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "id,t1,flair\nx,x_t1.nii.gz,x_flair.nii.gz\ny,y_t1.nii.gz,\n")
    with pytest.raises(InputError, match="line 3: empty flair"):
        load_cases(manifest)


def test_a_manifest_with_a_repeated_case_id_is_refused(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", "id,t1,flair\nx,1.nii.gz,2.nii.gz\nx,3.nii.gz,4.nii.gz\n")
    with pytest.raises(InputError, match="line 3: case id x appears twice"):
        load_cases(manifest)


def test_write_manifest_then_load_cases_gives_back_the_same_cases(tmp_path):
    folder = case_folder(tmp_path / "data", "sub-001")
    outside = touch_image(tmp_path / "elsewhere" / "other_t1.nii.gz")  # written as an absolute path
    cases = [Case("sub-001", folder / "sub-001_t1.nii.gz", folder / "sub-001_flair.nii.gz",
                  folder / "sub-001_wmh.nii.gz", None),
             Case("other", outside, folder / "sub-001_flair.nii.gz")]
    manifest = write_manifest(cases, tmp_path / "data" / "manifest.csv")
    text = manifest.read_text(encoding="utf-8")
    assert "sub-001/sub-001_t1.nii.gz" in text and str(outside.resolve()) in text
    back = load_cases(manifest)
    assert [(c.case_id, c.t1.resolve(), c.flair.resolve(), c.label and c.label.resolve(), c.mask)
            for c in back] == [(c.case_id, c.t1.resolve(), c.flair.resolve(),
                                c.label and c.label.resolve(), c.mask) for c in cases]


def test_several_datasets_load_as_one_list_in_the_order_given(tmp_path):
    case_folder(tmp_path / "first", "sub-001")
    case_folder(tmp_path / "second", "extra-001")
    case_folder(tmp_path / "second", "extra-002")
    cases = load_datasets([tmp_path / "second", tmp_path / "first"])
    assert [c.case_id for c in cases] == ["extra-001", "extra-002", "sub-001"]


def test_a_case_id_in_two_datasets_is_refused_naming_both(tmp_path):
    case_folder(tmp_path / "first", "sub-001")
    case_folder(tmp_path / "second", "sub-001")
    with pytest.raises(InputError, match="second.*case id 'sub-001' is also in .*first"):
        load_datasets([tmp_path / "first", tmp_path / "second"])
