"""Brain masks by deepbet's networks: the real deepbet on a synthetic subject, its files checked first.

Our synthetic anatomy is skull-stripped (MNI152 from nilearn), so these tests show that deepbet
runs offline, finds the brain we know and carries its mask to the FLAIR grid; heads with skull
and scalp need the head benchmark (issue 25, item 2) before anything can be said about them.
"""

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from phantom import save_tiny_model

from WMHDomainAdaptLib import brain_extraction
from WMHDomainAdaptLib.cli import main
from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.preprocess import compute_brain_mask

pytest.importorskip("deepbet")
pytest.importorskip("nilearn")


@pytest.fixture(scope="module")
def subject():
    from WMHDomainAdaptLib.synth.generate import generate_subject
    return generate_subject("target", 5, fov="full")  # deepbet expects a whole brain, not a crop


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_deepbet_finds_the_brain_of_a_skull_stripped_t1_and_the_mask_reaches_the_flair_grid(subject):
    mask = brain_extraction.deepbet_mask(subject.t1)
    assert mask.GetSize() == subject.t1.GetSize() and mask.GetOrigin() == subject.t1.GetOrigin()
    on_t1 = sitk.GetArrayFromImage(mask) > 0
    threshold_mask = compute_brain_mask(sitk.GetArrayFromImage(subject.t1), 0.12)
    assert dice(on_t1, threshold_mask) > 0.9  # the same brain as the mask made for such scans
    on_flair = brain_extraction.mask_on_flair_grid(mask, subject.flair, sitk.Transform())
    assert on_flair.shape == sitk.GetArrayViewFromImage(subject.flair).shape
    flair_volume = on_flair.sum() * np.prod(subject.flair.GetSpacing())
    t1_volume = on_t1.sum() * np.prod(subject.t1.GetSpacing())
    assert abs(flair_volume / t1_volume - 1) < 0.1  # the same brain, on a 1 x 1.2 x 3 mm grid


def test_segment_with_deepbet_says_which_mask_it_used(subject, tmp_path, capsys):
    sitk.WriteImage(subject.t1, str(tmp_path / "t1.nii.gz"))
    sitk.WriteImage(subject.flair, str(tmp_path / "flair.nii.gz"))
    model = save_tiny_model(tmp_path / "model.safetensors")
    assert main(["segment", "--model", str(model), "--t1", str(tmp_path / "t1.nii.gz"), "--flair",
                 str(tmp_path / "flair.nii.gz"), "--out", str(tmp_path / "mask.nii.gz"),
                 "--brain-mask", "deepbet"]) == 0
    assert "brain mask by deepbet" in capsys.readouterr().out


def test_a_deepbet_network_file_that_is_not_the_tested_one_is_refused_before_it_loads(tmp_path, monkeypatch):
    import deepbet.utils
    copy = tmp_path / "data"
    shutil.copytree(f"{deepbet.utils.DATA_PATH}/models", copy / "models")
    with open(copy / "models" / "model.pt", "ab") as handle:
        handle.write(b"\0")  # one byte more: what torch.jit.load would run is no longer what we tested
    monkeypatch.setattr(deepbet.utils, "DATA_PATH", str(copy))
    monkeypatch.setattr(brain_extraction, "_EXTRACTOR", None)
    with pytest.raises(InputError, match="model.pt: deepbet's network file is missing or not the one tested"):
        brain_extraction.load_extractor()
