"""A battery of bad input and faults against `wmhda`, as a user with damaged files, full disks and
typos would meet them. Every case must end with exit code 2, one line on stderr naming the file or
option, no traceback, and nothing new or changed on disk; warnings are one line and the run goes on.

Cases are generated where they can be (hypothesis: option values, truncations, header bytes,
intensity scales); the full disk and the read-only disk are small tmpfs mounts made by the test
(skipped with the reason where mounting is not allowed).

Only the command line and long-standing library calls are used, so the same file runs against
older commits (to show which cases they got wrong).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from phantom import phantom_arrays, phantom_image, save_tiny_model

from WMHDomainAdaptLib.cli import main

PROGRESS = re.compile(r"^[\w ]+: \d+/\d+ \(")  # the progress bar's lines, before the error
FAST = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """One phantom case (T1, FLAIR, label), a tiny model, a manifest: the healthy inputs."""
    folder = tmp_path_factory.mktemp("world")
    t1, flair, label = phantom_arrays(5)
    paths = {"t1": folder / "t1.nii.gz", "flair": folder / "flair.nii.gz", "label": folder / "wmh.nii.gz"}
    for role, array in (("t1", t1), ("flair", flair), ("label", label)):
        sitk.WriteImage(phantom_image(array), str(paths[role]), True)
    paths["model"] = save_tiny_model(folder / "model.safetensors", n_cases=1)
    paths["manifest"] = folder / "cases.csv"
    paths["manifest"].write_text(
        f"id,t1,flair,label,mask\ncase1,{paths['t1']},{paths['flair']},{paths['label']},\n"
    )
    paths["folder"] = folder
    return paths


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file (hidden ones too) under the folders, with a hash of its bytes."""
    files = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """`wmhda ARGV` in this process: exit code, stdout, stderr. An exception escaping is a traceback."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(argv, capsys, names: str, *folders: Path) -> str:
    """Exit 2, one error line naming `names`, no traceback, nothing new or changed in `folders`."""
    before = snapshot(*folders)
    code, _, err = run(argv, capsys)
    lines = [
        line
        for line in err.splitlines()
        if line.strip() and not line.startswith("warning:") and not PROGRESS.match(line)
    ]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert names in lines[0], lines[0]
    assert snapshot(*folders) == before
    return lines[0]


def segment_argv(world, t1=None, flair=None, out=None, model=None, extra=()):
    return [
        "segment",
        "--model",
        model or world["model"],
        "--t1",
        t1 or world["t1"],
        "--flair",
        flair or world["flair"],
        "--out",
        out,
        "--device",
        "cpu",
        *extra,
    ]


def train_argv(world, out, *extra):
    """A one-epoch `wmhda train` on the healthy case, writing `out`."""
    return [
        "train",
        "--train",
        world["manifest"],
        "--val",
        world["manifest"],
        "--out",
        out,
        "--epochs",
        "1",
        "--device",
        "cpu",
        *extra,
    ]


def work_folder(world) -> Path:
    folder = world["folder"] / f"work-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


# 1. A full disk never looks like success


@contextlib.contextmanager
def small_mount(folder: Path, options: str, full: bool = False):
    """A tmpfs at `folder`; with `full`, filled to the last byte by a file named `filler`."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip() or 'not root'})")
    try:
        if full:
            with contextlib.suppress(OSError), open(folder / "filler", "wb") as handle:
                while True:
                    handle.write(b"x" * 1024)
                    handle.flush()
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_segment_onto_a_full_disk_fails_naming_the_file_and_leaves_nothing(world, capsys, tmp_path, suffix):
    with small_mount(tmp_path / "full", "size=64k", full=True) as disk:
        line = assert_refused(segment_argv(world, out=disk / f"mask{suffix}"), capsys, f"mask{suffix}", disk)
        assert "No space left on device" in line
        assert [p.name for p in disk.iterdir()] == ["filler"]  # no empty output, no hidden temporary file


def test_segment_with_a_probability_map_onto_a_full_disk_fails(world, capsys, tmp_path):
    with small_mount(tmp_path / "full", "size=64k", full=True) as disk:
        argv = segment_argv(world, out=disk / "mask.nii.gz", extra=["--prob", disk / "prob.nii.gz"])
        code, _, err = run(argv, capsys)
        assert code == 2 and "No space left on device" in err and "Traceback" not in err
        assert [p.name for p in disk.iterdir()] == ["filler"]


def test_batch_segment_evaluate_csv_and_train_onto_a_full_disk_fail_in_one_line(world, capsys, tmp_path):
    with small_mount(tmp_path / "full", "size=64k", full=True) as disk:
        assert_refused(
            [
                "segment",
                "--model",
                world["model"],
                "--cases",
                world["manifest"],
                "--out-dir",
                disk,
                "--device",
                "cpu",
            ],
            capsys,
            "No space left on device",
            disk,
        )
        assert_refused(
            ["evaluate", "--pred", world["label"], "--ref", world["label"], "--csv", disk / "m.csv"],
            capsys,
            "m.csv",
            world["folder"],
        )
        assert_refused(
            train_argv(
                world, disk / "m.safetensors", "--steps-per-epoch", "1", "--batch-size", "2", "--no-n4"
            ),
            capsys,
            "m.safetensors",
            world["folder"],
        )


def test_writing_onto_a_read_only_disk_says_so(world, capsys, tmp_path):
    with small_mount(tmp_path / "ro", "ro,size=64k") as disk:
        line = assert_refused(segment_argv(world, out=disk / "mask.nii.gz"), capsys, "mask.nii.gz")
        assert "Read-only file system" in line


def test_a_killed_writers_hidden_leftover_is_cleaned_and_never_listed_as_a_model(world, capsys, tmp_path):
    out = tmp_path / "mask.nii.gz"
    leftover = tmp_path / ".mask.nii.gz.abcd1234.tmp.nii.gz"
    leftover.write_bytes(b"")
    code, _, err = run(segment_argv(world, out=out), capsys)
    assert code == 0, err
    assert not leftover.exists() and out.stat().st_size > 0


# 2. Broken or implausible input gives no confident mask


@FAST
@given(kept=st.floats(0.05, 0.98))
def test_a_cut_off_nifti_is_refused_wherever_it_is_cut(world, capsys, kept):
    folder = work_folder(world)
    for name, source in (("flair.nii.gz", world["flair"]), ("flair.nii", None)):
        if source is None:
            sitk.WriteImage(sitk.ReadImage(str(world["flair"])), str(folder / "full.nii"))
            data = (folder / "full.nii").read_bytes()
            (folder / "full.nii").unlink()
        else:
            data = source.read_bytes()
        cut = folder / name
        cut.write_bytes(data[: max(400, int(len(data) * kept))])
        assert_refused(segment_argv(world, flair=cut, out=folder / "mask.nii.gz"), capsys, str(cut), folder)
    shutil.rmtree(folder)


def test_a_cut_off_label_or_prediction_is_refused_by_adapt_and_evaluate(world, capsys):
    folder = work_folder(world)
    cut = folder / "wmh.nii.gz"
    cut.write_bytes(world["label"].read_bytes()[:-200])
    manifest = folder / "cases.csv"
    manifest.write_text(f"id,t1,flair,label,mask\ncase1,{world['t1']},{world['flair']},{cut},\n")
    assert_refused(
        [
            "adapt",
            "--model",
            world["model"],
            "--cases",
            manifest,
            "--out",
            folder / "a.safetensors",
            "--device",
            "cpu",
            "--epochs",
            "1",
        ],
        capsys,
        "wmh.nii.gz",
        folder,
    )
    assert_refused(["evaluate", "--pred", cut, "--ref", world["label"]], capsys, "wmh.nii.gz", folder)


def write_flair_like(world, folder: Path, array: np.ndarray, name: str = "flair.nii.gz") -> Path:
    reference = sitk.ReadImage(str(world["flair"]))
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    path = folder / name
    sitk.WriteImage(image, str(path), True)
    return path


@FAST
@given(value=st.one_of(st.just(0.0), st.floats(-1e6, 1e6, allow_nan=False), st.just(1e26)))
@example(value=0.0)
@example(value=1e26)
def test_a_blank_or_constant_flair_is_refused_not_segmented(world, capsys, value):
    folder = work_folder(world)
    shape = sitk.GetArrayViewFromImage(sitk.ReadImage(str(world["flair"]))).shape
    flair = write_flair_like(world, folder, np.full(shape, value, np.float32))
    line = assert_refused(
        segment_argv(world, flair=flair, out=folder / "mask.nii.gz"), capsys, str(flair), folder
    )
    assert "no contrast" in line
    shutil.rmtree(folder)


@FAST
@given(power=st.integers(-60, 86))
@example(power=86)  # about 1e26: float32 statistics overflow here
@example(power=-60)
def test_a_flair_scaled_by_any_power_of_two_gives_the_same_mask(world, capsys, power):
    """z-scoring is scale-free: 2**86 (about 1e26) must not overflow into a confident garbage mask."""
    folder = work_folder(world)
    flair = sitk.GetArrayFromImage(sitk.ReadImage(str(world["flair"])))
    scaled = write_flair_like(world, folder, (flair.astype(np.float64) * 2.0**power).astype(np.float32))
    for path, out in ((world["flair"], "plain.nii.gz"), (scaled, "scaled.nii.gz")):
        code, _, err = run(segment_argv(world, flair=path, out=folder / out), capsys)
        assert code == 0, err
    plain = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "plain.nii.gz")))
    other = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "scaled.nii.gz")))
    assert np.sum(plain != other) <= 0.001 * plain.size
    shutil.rmtree(folder)


def test_a_t1_covering_part_of_the_flair_is_warned_about_in_one_line(world, capsys):
    folder = work_folder(world)
    t1 = sitk.ReadImage(str(world["t1"]))
    half = t1[:, :, : t1.GetSize()[2] * 2 // 3]
    sitk.WriteImage(half, str(folder / "t1_part.nii.gz"))
    code, _, err = run(segment_argv(world, t1=folder / "t1_part.nii.gz", out=folder / "mask.nii.gz"), capsys)
    assert code == 0, err
    warnings_ = [line for line in err.splitlines() if "warning:" in line]
    assert len(warnings_) == 1 and "t1_part.nii.gz" in warnings_[0] and "covers only" in warnings_[0]


def nifti_with_forms(world, folder: Path, shift_mm: float) -> Path:
    """The FLAIR as .nii whose sform is moved by `shift_mm` away from its qform."""
    path = folder / "flair.nii"
    sitk.WriteImage(sitk.ReadImage(str(world["flair"])), str(path))
    raw = bytearray(path.read_bytes())
    srow = list(struct.unpack("<12f", raw[280:328]))
    srow[3] += shift_mm
    raw[280:328] = struct.pack("<12f", *srow)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("shift_mm", [2.0, 25.0])
def test_a_nifti_whose_qform_and_sform_disagree_is_refused(world, capsys, shift_mm):
    folder = work_folder(world)
    flair = nifti_with_forms(world, folder, shift_mm)
    line = assert_refused(
        segment_argv(world, flair=flair, out=folder / "mask.nii.gz"), capsys, str(flair), folder
    )
    assert "qform and sform disagree" in line


def test_a_nifti_whose_forms_agree_to_float_precision_is_read(world, capsys):
    folder = work_folder(world)
    flair = nifti_with_forms(world, folder, 0.001)
    code, _, err = run(segment_argv(world, flair=flair, out=folder / "mask.nii.gz"), capsys)
    assert code == 0, err


@FAST
@given(offset=st.integers(0, 347), value=st.integers(0, 255))
def test_a_damaged_nifti_header_byte_is_read_or_refused_but_never_a_traceback(world, capsys, offset, value):
    folder = work_folder(world)
    raw = bytearray(gzip.decompress(world["flair"].read_bytes()))
    raw[offset] = value
    flair = folder / "flair.nii.gz"
    flair.write_bytes(gzip.compress(bytes(raw)))
    before = snapshot(folder)
    code, _, err = run(segment_argv(world, flair=flair, out=folder / "mask.nii.gz"), capsys)
    assert code in (0, 2) and "Traceback" not in err, err
    if code == 2:
        assert len([line for line in err.splitlines() if "error:" in line]) == 1
        assert snapshot(folder) == before
    shutil.rmtree(folder)


def test_a_manifest_in_another_text_encoding_is_refused_in_one_line(world, capsys):
    folder = work_folder(world)
    manifest = folder / "cases.csv"
    manifest.write_bytes(
        f"id,t1,flair,label,mask\npatiént,{world['t1']},{world['flair']},,\n".encode("latin-1")
    )
    line = assert_refused(
        ["segment", "--model", world["model"], "--cases", manifest, "--out-dir", folder / "o"],
        capsys,
        "cases.csv",
        folder,
    )
    assert "UTF-8" in line


# 3. Output paths never destroy data


@pytest.mark.parametrize("target", ["flair", "t1", "model"])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(world, capsys, target):
    line = assert_refused(segment_argv(world, out=world[target]), capsys, str(world[target]), world["folder"])
    assert "input" in line


def test_a_probability_map_written_over_the_mask_is_refused(world, capsys):
    folder = work_folder(world)
    out = folder / "mask.nii.gz"
    assert_refused(segment_argv(world, out=out, extra=["--prob", out]), capsys, "mask.nii.gz", folder)


@pytest.mark.parametrize("case_id", ["../escaped", "sub/dir", ".hidden", "a\\b"])
def test_a_case_id_that_would_write_outside_the_output_folder_is_refused(world, capsys, case_id):
    folder = work_folder(world)
    manifest = folder / "cases.csv"
    manifest.write_text(f"id,t1,flair,label,mask\n{case_id},{world['t1']},{world['flair']},,\n")
    assert_refused(
        ["segment", "--model", world["model"], "--cases", manifest, "--out-dir", folder / "out"],
        capsys,
        "case id",
        world["folder"],
    )


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif", ".txt", ""])
def test_an_output_format_that_cannot_hold_a_3d_volume_is_refused_before_any_work(world, capsys, suffix):
    folder = work_folder(world)
    assert_refused(segment_argv(world, out=folder / f"mask{suffix}"), capsys, f"mask{suffix}", folder)


def test_an_adapted_or_calibrated_model_over_its_parent_is_refused(world, capsys):
    for command in (["adapt", "--cases", world["manifest"]], ["calibrate", "--cases", world["manifest"]]):
        assert_refused(
            [*command, "--model", world["model"], "--out", world["model"], "--device", "cpu"],
            capsys,
            "model.safetensors",
            world["folder"],
        )


# 4. The model's hash covers the metadata that decides results


def edited_model(world, folder: Path, change) -> Path:
    data = world["model"].read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + size])
    metadata = json.loads(header["__metadata__"]["wmhda"])
    change(metadata)
    header["__metadata__"]["wmhda"] = json.dumps(metadata)
    encoded = json.dumps(header).encode()
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    path = folder / "edited.safetensors"
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + size :])
    return path


METADATA_EDITS = {
    "threshold": lambda m: m.update(threshold=0.05),
    "channel order": lambda m: m.update(input_channels=m["input_channels"][::-1]),
    "N4 switch": lambda m: m["preprocessing"].update(n4=True),
    "clip": lambda m: m["preprocessing"].update(clip=0.5),
    "threshold as text": lambda m: m.update(threshold="high"),
    "preprocessing as a number": lambda m: m.update(preprocessing=3),
}


@pytest.mark.parametrize("edit", METADATA_EDITS.values(), ids=METADATA_EDITS.keys())
def test_a_model_file_with_edited_metadata_is_refused_by_segment_and_train(world, capsys, edit):
    folder = work_folder(world)
    model = edited_model(world, folder, edit)
    assert_refused(
        segment_argv(world, model=model, out=folder / "mask.nii.gz"), capsys, "edited.safetensors", folder
    )
    assert_refused(
        train_argv(world, folder / "new.safetensors", "--init-from", model),
        capsys,
        "edited.safetensors",
        folder,
    )


# 5. Options that make no sense are refused at the command line

NUMERIC_OPTIONS = {
    "train": [
        "--epochs",
        "--steps-per-epoch",
        "--batch-size",
        "--patch-size",
        "--lr",
        "--lr-decay",
        "--patience",
        "--lesion-balance",
        "--fine-width",
        "--coarse-width",
        "--threads",
    ],
    "adapt": ["--epochs", "--patches-per-case", "--patch-size", "--batch-size", "--lr", "--threads"],
    "calibrate": ["--core-probability"],
    "segment": ["--min-lesion-mm3", "--threads"],
}
REQUIRED = {
    "train": ["--train", "x.csv", "--val", "x.csv", "--out", "m.safetensors"],
    "adapt": ["--model", "m.safetensors", "--cases", "x.csv", "--out", "n.safetensors"],
    "calibrate": ["--model", "m.safetensors", "--cases", "x.csv", "--out", "n.safetensors"],
    "segment": ["--model", "m.safetensors", "--t1", "a.nii", "--flair", "b.nii", "--out", "c.nii"],
}
NONSENSE = {  # per option: values that no run could use
    "--epochs": ["0", "-3"],
    "--steps-per-epoch": ["0"],
    "--batch-size": ["0"],
    "--patch-size": ["0", "7", "-64"],
    "--lr": ["0", "nan", "-1e-3", "inf"],
    "--lr-decay": ["0", "1.5", "nan"],
    "--patience": ["0"],
    "--lesion-balance": ["-0.1", "2", "nan"],
    "--fine-width": ["0"],
    "--coarse-width": ["0"],
    "--threads": ["0"],
    "--patches-per-case": ["0"],
    "--core-probability": ["0", "1.01", "nan", "-0.5"],
    "--min-lesion-mm3": ["-1", "nan"],
}


@FAST
@given(data=st.data())
def test_a_nonsense_numeric_option_is_refused_in_one_line_naming_it(capsys, tmp_path, data):
    command = data.draw(st.sampled_from(sorted(NUMERIC_OPTIONS)))
    option = data.draw(st.sampled_from(NUMERIC_OPTIONS[command]))
    value = data.draw(st.sampled_from(NONSENSE[option] + ["x", "", "1e999"]))
    code, _, err = run([command, *REQUIRED[command], option, value], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and option in lines[0], err
    assert not (tmp_path / "m.safetensors").exists()


BLOCK_PLOTS = textwrap.dedent("""
    import runpy, sys
    class Absent:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "matplotlib":
                raise ModuleNotFoundError("No module named 'matplotlib'", name=name)
    sys.meta_path.insert(0, Absent())
    sys.argv = ["wmhda", *sys.argv[1:]]
    runpy.run_module("WMHDomainAdaptLib", run_name="__main__")
""")


def test_experiment_help_works_without_the_plots_extra_and_a_run_names_it(tmp_path):
    helped = subprocess.run(
        [sys.executable, "-c", BLOCK_PLOTS, "experiment", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "--config" in helped.stdout, helped.stderr
    ran = subprocess.run(
        [sys.executable, "-c", BLOCK_PLOTS, "experiment", "--config", "small", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 2 and "matplotlib" in ran.stderr and "Traceback" not in ran.stderr, ran.stderr
    assert not (tmp_path / "o").exists()
