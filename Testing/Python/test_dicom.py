"""DICOM series as input: a folder holding one series reads as its volume, anything else is one line."""

import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from phantom import phantom_arrays, phantom_image, save_tiny_model

from WMHDomainAdaptLib.cli import main
from WMHDomainAdaptLib.dataset import Case, write_manifest
from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.io import read_image


def write_dicom_series(image: sitk.Image, folder: Path, description: str, uid_suffix: str = "1") -> Path:
    """One slice file per z, as a scanner writes them: position, orientation and spacing per slice."""
    folder.mkdir(parents=True, exist_ok=True)
    volume = sitk.Cast(image, sitk.sitkInt16)
    direction = volume.GetDirection()
    series_uid = f"1.2.826.0.1.3680043.2.1125.{uid_suffix}"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(volume.GetDepth()):
        slice_ = volume[:, :, z]
        tags = {"0008|0060": "MR", "0008|103e": description, "0020|000e": series_uid,
                "0020|000d": "1.2.826.0.1.3680043.2.1125.99", "0010|0020": "PHANTOM",
                "0020|0037": "\\".join(f"{v:.10f}" for v in (*direction[0:7:3], *direction[1:8:3])),
                "0020|0032": "\\".join(f"{v:.10f}" for v in volume.TransformIndexToPhysicalPoint((0, 0, z))),
                "0020|0013": str(z + 1),
                "0028|0030": "\\".join(f"{v:.10f}" for v in volume.GetSpacing()[1::-1]),
                "0018|0050": f"{volume.GetSpacing()[2]:.10f}",
                "0008|0018": f"{series_uid}.{z + 1}"}
        for key, value in tags.items():
            slice_.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice{z:03d}.dcm"))
        writer.Execute(slice_)
    return folder


def test_a_dicom_series_folder_reads_as_the_volume_it_was_written_from(tmp_path):
    flair = phantom_image(phantom_arrays(1)[1])
    folder = write_dicom_series(flair, tmp_path / "flair", "FLAIR ax")
    image = read_image(folder, "FLAIR")
    assert image.GetSize() == flair.GetSize()
    assert np.allclose(image.GetSpacing(), flair.GetSpacing(), atol=1e-6)
    assert np.allclose(image.GetOrigin(), flair.GetOrigin(), atol=1e-6)
    assert np.allclose(image.GetDirection(), flair.GetDirection(), atol=1e-6)
    expected = sitk.GetArrayFromImage(sitk.Cast(flair, sitk.sitkInt16))
    assert np.array_equal(sitk.GetArrayViewFromImage(image), expected)


def test_segment_takes_dicom_folders_and_writes_the_mask_on_the_series_grid(tmp_path):
    t1, flair, _ = phantom_arrays(2)
    t1_folder = write_dicom_series(phantom_image(t1), tmp_path / "t1", "T1 3D", "2")
    flair_folder = write_dicom_series(phantom_image(flair), tmp_path / "flair", "FLAIR ax", "3")
    model = save_tiny_model(tmp_path / "model.safetensors")
    out = tmp_path / "mask.nii.gz"
    began = time.perf_counter()
    assert main(["segment", "--model", str(model), "--t1", str(t1_folder), "--flair", str(flair_folder),
                 "--out", str(out)]) == 0
    assert time.perf_counter() - began < 60
    mask, series = read_image(out), read_image(flair_folder)
    assert mask.GetSize() == series.GetSize()
    # NIfTI holds geometry in float32: the series' 1.2 mm reads back as 1.2000000477
    for got, want in ((mask.GetSpacing(), series.GetSpacing()), (mask.GetOrigin(), series.GetOrigin()),
                      (mask.GetDirection(), series.GetDirection())):
        assert np.allclose(got, want, rtol=1e-6, atol=1e-5)
    # in a batch manifest too
    manifest = write_manifest([Case("dicom-case", t1_folder, flair_folder)], tmp_path / "cases.csv")
    assert main(["segment", "--model", str(model), "--cases", str(manifest), "--out-dir",
                 str(tmp_path / "batch")]) == 0
    assert (tmp_path / "batch" / "dicom-case_wmh_pred.nii.gz").is_file()


def test_a_folder_with_two_series_is_refused_naming_both(tmp_path):
    image = phantom_image(phantom_arrays(3)[1])
    write_dicom_series(image, tmp_path / "mixed", "FLAIR ax", "4")
    write_dicom_series(image, tmp_path / "other", "T2 ax", "5")
    for path in (tmp_path / "other").iterdir():
        path.rename(tmp_path / "mixed" / f"t2-{path.name}")
    with pytest.raises(InputError) as raised:
        read_image(tmp_path / "mixed", "FLAIR")
    message = str(raised.value)
    assert "holds 2 DICOM series" in message and "'FLAIR ax'" in message and "'T2 ax'" in message
    assert "\n" not in message


def test_a_folder_without_dicom_is_one_line_and_segment_writes_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(InputError, match="holds none"):
        read_image(tmp_path / "empty", "FLAIR")
    t1, flair, _ = phantom_arrays(4)
    sitk.WriteImage(phantom_image(t1), str(tmp_path / "t1.nii.gz"))
    model = save_tiny_model(tmp_path / "model.safetensors")
    code = main(["segment", "--model", str(model), "--t1", str(tmp_path / "t1.nii.gz"), "--flair",
                 str(tmp_path / "empty"), "--out", str(tmp_path / "mask.nii.gz")])
    assert code == 2 and not (tmp_path / "mask.nii.gz").exists()
    assert "DICOM" in capsys.readouterr().err
