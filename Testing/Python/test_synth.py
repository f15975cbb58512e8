"""The synthetic benchmark: reproducible files, exact geometry, lesion loads, domain contrasts."""

import dataclasses
import json

import numpy as np
import pytest
import SimpleITK as sitk

from WMHDomainAdaptLib.cli import main
from WMHDomainAdaptLib.dataset import load_cases
from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.io import read_image, read_label, same_grid
from WMHDomainAdaptLib.synth import DOMAINS, SPLITS, generate_subject, write_preset, write_split
from WMHDomainAdaptLib.synth.measure import flair_contrasts, protocol_ratios, t1_contrasts

LOADED_SEED = 0  # about 10 mL requested: enough lesion voxels for stable medians


def world_box(image: sitk.Image) -> np.ndarray:
    """Physical corners (outer voxel edges) of an image's field of view."""
    low = image.TransformContinuousIndexToPhysicalPoint([-0.5] * 3)
    high = image.TransformContinuousIndexToPhysicalPoint([s - 0.5 for s in image.GetSize()])
    return np.array([low, high])


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    events = []
    out = tmp_path_factory.mktemp("split")
    cases = write_split(out, "source", 2, seed=3, fov="small", progress=events.append)
    return out, cases, events


@pytest.fixture(scope="module")
def subjects():
    """One well-loaded subject per domain, bias off so medians measure the protocol contrast."""
    return {name: generate_subject(dataclasses.replace(domain, bias_sigma=0.0), LOADED_SEED,
                                   "sub000", fov="small", keep_maps=True)
            for name, domain in DOMAINS.items()}


def test_a_split_writes_one_folder_per_subject_and_a_manifest_that_loads(split):
    out, cases, events = split
    assert [c.case_id for c in load_cases(out / "manifest.csv")] == ["source-000", "source-001"]
    for case in cases:
        for role in ("t1", "flair", "wmh"):
            assert (out / case.case_id / f"{case.case_id}_{role}.nii.gz").is_file()
    assert load_cases(out)[0].label.name == "source-000_wmh.nii.gz"
    assert events[-1].done == events[-1].total == 2


def test_the_same_seed_writes_bit_identical_files_with_any_number_of_workers(split, tmp_path):
    out, cases, _ = split
    write_split(tmp_path, "source", 2, seed=3, fov="small", workers=2)
    for case in cases:
        for role in ("t1", "flair", "wmh", "info"):
            suffix = "info.json" if role == "info" else f"{role}.nii.gz"
            name = f"{case.case_id}/{case.case_id}_{suffix}"
            assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_different_seeds_give_different_subjects(split):
    _, cases, _ = split
    first, second = (sitk.GetArrayFromImage(read_image(c.flair)) for c in cases)
    assert first.shape == second.shape and not np.array_equal(first, second)


@pytest.mark.parametrize("domain, spacing", [("source", (1.0, 1.2, 6.0)), ("target", (1.0, 1.2, 3.0)),
                                             ("mild", (1.0, 1.2, 3.0))])
def test_flair_label_and_t1_grids_follow_the_domain_and_share_world_space(subjects, domain, spacing):
    subject = subjects[domain]
    assert np.allclose(subject.flair.GetSpacing(), spacing)
    assert np.allclose(subject.t1.GetSpacing(), (1.0, 1.0, 1.0))
    assert same_grid(subject.label, subject.flair)
    assert subject.label.GetPixelID() == sitk.sitkUInt8 and subject.flair.GetPixelID() == sitk.sitkInt16
    assert set(np.unique(sitk.GetArrayFromImage(subject.label))) <= {0, 1}
    assert subject.flair.GetDirection() == subject.t1.GetDirection()
    t1_box, flair_box = world_box(subject.t1), world_box(subject.flair)
    assert np.allclose(t1_box[0], flair_box[0], atol=1e-6)  # same framing: fields of view start together
    assert np.all(np.abs(t1_box[1] - flair_box[1]) < np.array(spacing))


def test_written_label_reads_back_on_the_flair_grid(split):
    _, cases, _ = split
    flair = read_image(cases[0].flair)
    assert read_label(cases[0].label, flair).dtype == np.uint8


def test_lesion_volume_matches_the_requested_load_in_order_of_magnitude(subjects):
    for subject in subjects.values():
        requested, truth, label = (subject.info[k] for k in ("load_requested_ml", "truth_ml", "label_ml"))
        assert 0.5 * requested < truth < 2.0 * requested
        assert 0.3 * truth < label < 2.0 * truth


def test_one_seed_is_one_brain_scanned_with_each_protocol(subjects):
    truths = [s.maps["truth_1mm"] for s in subjects.values()]
    assert all(np.array_equal(truths[0], t) for t in truths[1:])


def test_target_flair_has_flat_gm_wm_and_weaker_lesion_contrast_than_source_and_mild(subjects):
    measured = {name: flair_contrasts(s) for name, s in subjects.items()}
    assert measured["source"]["lesion/wm"] > 1.5
    assert 1.1 < measured["target"]["lesion/wm"] < measured["mild"]["lesion/wm"] - 0.08
    assert measured["target"]["lesion/wm"] < measured["source"]["lesion/wm"] - 0.3
    assert abs(measured["target"]["gm/wm"] - 1.0) < 0.15
    assert measured["mild"]["gm/wm"] > measured["target"]["gm/wm"] + 0.05
    for contrast in measured.values():
        assert contrast["csf/wm"] < 0.4  # CSF is nulled in every protocol


def test_pure_tissue_ratios_of_the_protocols_point_the_intended_way():
    ratios = {name: protocol_ratios(domain) for name, domain in DOMAINS.items()}
    assert ratios["source"]["wmh/wm"] > ratios["mild"]["wmh/wm"] > ratios["target"]["wmh/wm"] > 1.3
    assert abs(ratios["target"]["gm/wm"] - 1.0) < 0.05 < ratios["mild"]["gm/wm"] - 1.0


def test_t1_lesions_are_at_most_slightly_darker_and_small_ones_invisible(subjects):
    contrast = t1_contrasts(subjects["source"])
    assert 0.85 <= contrast["t1 lesion darkening"] <= 1.0
    assert contrast["t1 small lesion darkening"] == pytest.approx(1.0)


def test_target_t1_has_stronger_gm_wm_contrast(subjects):
    def gm_over_wm(subject):
        t1 = sitk.GetArrayFromImage(subject.t1)
        gm, wm = subject.maps["gm_1mm"] > 0.9, subject.maps["wm_1mm"] > 0.95
        return np.median(t1[gm]) / np.median(t1[wm])

    assert gm_over_wm(subjects["target"]) < gm_over_wm(subjects["source"]) - 0.05


def test_a_preset_writes_every_split_with_disjoint_seeds(tmp_path):
    written = write_preset(tmp_path, "tiny", seed=1, sizes={split.name: 1 for split in SPLITS})
    assert sorted(written) == sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    description = json.loads((tmp_path / "benchmark.json").read_text(encoding="utf-8"))
    assert description["splits"]["target_pool"]["domain"] == "target"
    seeds = []
    for name in written:
        (case,) = load_cases(tmp_path / name / "manifest.csv")
        seeds.append(json.loads(case.flair.with_name(f"{case.case_id}_info.json").read_text(encoding="utf-8"))["seed"])
    assert len(set(seeds)) == len(seeds) == 6


@pytest.mark.parametrize("arguments, named", [
    (["--domain", "source", "--n", "0"], "--n"),
    (["--domain", "siemens", "--n", "1"], "--domain"),
    (["--preset", "huge"], "--preset"),
    (["--preset", "tiny", "--sizes", "source_tran=1"], "--sizes"),
    (["--domain", "source", "--n", "1", "--fov", "tiny"], "--fov"),
    (["--preset", "tiny", "--prefix", "val"], "--prefix"),
])
def test_bad_requests_fail_with_a_message_naming_the_setting(arguments, named, tmp_path, capsys):
    try:
        code = main(["synth", *arguments, "--out", str(tmp_path / "out")])
    except SystemExit as refused:  # argparse's own checks (--n 0)
        code = refused.code
    assert code == 2
    assert named in capsys.readouterr().err


def test_a_prefix_renames_the_subjects_without_changing_their_images(tmp_path):
    for name, extra in (("plain", []), ("renamed", ["--prefix", "val51"])):
        assert main(["synth", "--domain", "source", "--n", "1", "--seed", "3", "--fov", "small",
                     *extra, "--out", str(tmp_path / name)]) == 0
    (plain,), (renamed,) = (load_cases(tmp_path / name / "manifest.csv") for name in ("plain", "renamed"))
    assert (plain.case_id, renamed.case_id) == ("source-000", "val51-000")
    for image in ("t1", "flair", "label"):
        first, second = (sitk.GetArrayFromImage(sitk.ReadImage(str(getattr(case, image))))
                         for case in (plain, renamed))
        assert np.array_equal(first, second)


def test_an_unwritable_output_folder_is_reported_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="not writable"):
        write_split(blocker / "out", "source", 1, seed=0, fov="small")
