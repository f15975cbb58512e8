"""T1 onto FLAIR: misalignment found and registered away; aligned pairs left on their headers.

On a synthetic subject (real MNI152 anatomy, small field of view): ellipsoid phantoms are too
symmetric for mutual information to pin down a rotation, as real heads are not.
"""

import time

import numpy as np
import pytest
import SimpleITK as sitk
from phantom import save_tiny_model

from WMHDomainAdaptLib.cli import main
from WMHDomainAdaptLib.preprocess import PreprocessConfig, t1_on_flair_grid
from WMHDomainAdaptLib.registration import alignment, place_t1

pytest.importorskip("nilearn")


@pytest.fixture(scope="module")
def subject():
    from WMHDomainAdaptLib.synth.generate import generate_subject
    return generate_subject("target", 5, fov="small")


def centre_of(image: sitk.Image) -> tuple:
    return image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])


def rigid(image: sitk.Image, rotation_deg=(0, 0, 0), shift_mm=(0, 0, 0)) -> sitk.Euler3DTransform:
    """A head movement about the middle of `image`."""
    return sitk.Euler3DTransform(centre_of(image), *np.deg2rad(rotation_deg), shift_mm)


def moved_t1(subject, movement: sitk.Transform) -> sitk.Image:
    """The T1 as it would be had the head moved by `movement` before it was acquired."""
    return sitk.Resample(subject.t1, subject.t1, movement, sitk.sitkLinear, 0.0)


def residual_mm(found: sitk.Transform, truth: sitk.Transform, flair: sitk.Image) -> float:
    """Largest distance between where `found` and the truth put 8 points around the brain's middle."""
    corners = np.array(np.meshgrid([0.25, 0.75], [0.25, 0.75], [0.25, 0.75])).reshape(3, -1).T
    points = [flair.TransformContinuousIndexToPhysicalPoint([f * (s - 1) for f, s in zip(c, flair.GetSize())])
              for c in corners]
    return max(np.linalg.norm(np.subtract(found.TransformPoint(p), truth.TransformPoint(p))) for p in points)


def test_an_aligned_pair_stays_on_its_headers(subject):
    assert not alignment(subject.t1, subject.flair).misaligned
    placement = place_t1(subject.t1, subject.flair, "auto")
    assert not placement.registered and placement.reason.startswith("headers")


@pytest.mark.parametrize("rotation, shift", [((0, 0, 0), (3, -2, 2)), ((3, 0, 0), (0, 0, 0)),
                                             ((0, -2, 3), (2, 2, -3))])
def test_a_moved_head_is_found_and_registered_to_under_a_millimetre(subject, rotation, shift):
    movement = rigid(subject.flair, rotation, shift)
    t1 = moved_t1(subject, movement)
    assert alignment(t1, subject.flair).misaligned
    began = time.perf_counter()
    placement = place_t1(t1, subject.flair, "auto")
    seconds = time.perf_counter() - began
    assert placement.registered and placement.reason.startswith("registered")
    # the moved T1 shows at movement^-1(x) what the FLAIR shows at x
    error = residual_mm(placement.transform, movement.GetInverse(), subject.flair)
    print(f"rotation {rotation} deg, shift {shift} mm: residual {error:.2f} mm in {seconds:.1f} s")
    assert error < 1.0


def test_an_axial_oblique_flair_against_a_sagittal_t1_lines_up_through_the_headers(subject):
    tilt = np.deg2rad(20)  # the FLAIR's slices tilted 20 degrees about x, as along the AC-PC line
    size = [int(f * n) for f, n in zip((0.7, 0.7, 0.6), subject.flair.GetSize())]  # tilted, inside the T1
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing(subject.flair.GetSpacing())
    grid.SetDirection((1, 0, 0, 0, np.cos(tilt), -np.sin(tilt), 0, np.sin(tilt), np.cos(tilt)))
    grid.SetOrigin(tuple(np.asarray(centre_of(subject.flair)) - np.asarray(centre_of(grid))))  # same middle
    flair = sitk.Resample(subject.flair, grid, sitk.Transform(), sitk.sitkLinear, 0.0)
    sagittal_t1 = sitk.PermuteAxes(subject.t1, [1, 2, 0])  # stored sagittally: same voxels, same world
    assert not alignment(sagittal_t1, flair).misaligned
    resampled, placement = t1_on_flair_grid(sagittal_t1, flair, PreprocessConfig(), register="auto")
    assert not placement.registered
    expected = sitk.Resample(sitk.Cast(subject.t1, sitk.sitkFloat32), flair, sitk.Transform(),
                             sitk.sitkLinear, 0.0)
    assert np.allclose(sitk.GetArrayViewFromImage(resampled), sitk.GetArrayViewFromImage(expected), atol=1e-3)
    movement = rigid(flair, (0, 0, 0), (0, 3, 0))
    placement = place_t1(sitk.PermuteAxes(moved_t1(subject, movement), [1, 2, 0]), flair, "auto")
    assert placement.registered
    assert residual_mm(placement.transform, movement.GetInverse(), flair) < 1.0


def test_never_and_always_do_as_told(subject):
    t1 = moved_t1(subject, rigid(subject.flair, (0, 0, 0), (3, 0, 0)))
    assert not place_t1(t1, subject.flair, "never").registered
    assert place_t1(t1, subject.flair, "always").registered


def test_segment_registers_a_moved_t1_and_says_so(subject, tmp_path, capsys):
    t1 = moved_t1(subject, rigid(subject.flair, (0, 0, 2), (3, 0, 0)))
    sitk.WriteImage(t1, str(tmp_path / "t1.nii.gz"))
    sitk.WriteImage(subject.flair, str(tmp_path / "flair.nii.gz"))
    model = save_tiny_model(tmp_path / "model.safetensors")
    common = ["segment", "--model", str(model), "--t1", str(tmp_path / "t1.nii.gz"), "--flair",
              str(tmp_path / "flair.nii.gz")]
    assert main(common + ["--out", str(tmp_path / "auto.nii.gz")]) == 0
    assert "T1 registered" in capsys.readouterr().out
    assert main(common + ["--out", str(tmp_path / "never.nii.gz"), "--register", "never"]) == 0
    assert "T1 registered" not in capsys.readouterr().out
