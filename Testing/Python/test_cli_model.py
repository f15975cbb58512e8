"""`wmhda train`, `segment` and `adapt` end to end on phantoms, and their bad-input exits."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from phantom import write_phantom_case

from WMHDomainAdaptLib.cli import main
from WMHDomainAdaptLib.dataset import write_manifest
from WMHDomainAdaptLib.modelfile import file_sha256, load_model, read_metadata

FAST_TRAIN = ["--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "16", "--patch-size", "32",
              "--no-n4", "--device", "cpu", "--threads", "1"]
FAST_ADAPT = ["--epochs", "2", "--patches-per-case", "32", "--batch-size", "16", "--patch-size", "32",
              "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    cases = [write_phantom_case(root / "cases", seed) for seed in range(5)]
    write_manifest(cases[:2], root / "train.csv")
    write_manifest(cases[2:3], root / "val.csv")
    write_manifest(cases[3:], root / "target.csv")
    model = root / "source.safetensors"
    assert main(["train", "--train", str(root / "train.csv"), "--val", str(root / "val.csv"),
                 "--out", str(model), *FAST_TRAIN]) == 0
    return root, cases, model


def test_train_writes_a_model_with_its_training_summary(workspace):
    _, cases, model = workspace
    training = read_metadata(model)["training"]
    assert training["status"] == "complete"
    assert training["case_ids"] == [cases[0].case_id, cases[1].case_id]
    assert len(training["history"]) == training["epochs_run"] >= 1
    assert training["arguments"]["train"] == [str(workspace[0] / "train.csv")]
    assert training["arguments"]["lr_decay"] == 0.93 and training["arguments"]["seed"] == 0


def test_train_from_scratch_twice_with_one_seed_gives_the_same_weights(workspace, tmp_path):
    root = workspace[0]
    for name in ("first", "second"):
        torch.manual_seed(len(name))  # whatever ran before must not decide the initial weights
        assert main(["train", "--train", str(root / "train.csv"), "--val", str(root / "val.csv"),
                     "--out", str(tmp_path / f"{name}.safetensors"), *FAST_TRAIN, "--epochs", "1"]) == 0
    first, second = (load_model(tmp_path / f"{name}.safetensors").network.state_dict()
                     for name in ("first", "second"))
    assert all(torch.equal(first[key], second[key]) for key in first)


def respaced_copy(case, folder, factors):
    """The case's T1 and FLAIR with their spacing multiplied by (x, y, z) factors."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ("t1", "flair"):
        image = sitk.ReadImage(str(getattr(case, name)))
        image.SetSpacing([s * f for s, f in zip(image.GetSpacing(), factors)])
        paths.append(folder / f"{name}.nii.gz")
        sitk.WriteImage(image, str(paths[-1]))
    return paths


def test_segment_warns_about_an_in_plane_spacing_far_from_training_but_not_about_slices(
        workspace, tmp_path, capsys):
    _, cases, model = workspace
    for factors, warned in (((2.0, 2.0, 1.0), True), ((1.0, 1.0, 2.0), False)):
        t1, flair = respaced_copy(cases[0], tmp_path / str(factors), factors)
        out = tmp_path / str(factors) / "mask.nii.gz"
        assert main(["segment", "--model", str(model), "--t1", str(t1), "--flair", str(flair),
                     "--out", str(out), "--device", "cpu"]) == 0
        assert ("far from the model's training spacing" in capsys.readouterr().err) == warned
        assert out.exists()


def test_train_builds_and_records_the_widths_and_context_it_is_given_and_segment_repeats_them(
        workspace, tmp_path, capsys):
    root, cases, _ = workspace
    model = tmp_path / "narrow.safetensors"
    assert main(["train", "--train", str(root / "train.csv"), "--val", str(root / "val.csv"),
                 "--out", str(model), *FAST_TRAIN, "--epochs", "1", "--fine-width", "8",
                 "--coarse-width", "12", "--context-slices", "1"]) == 0
    loaded = load_model(model)
    layers = loaded.network.layers
    assert (loaded.network.architecture.fine_width, loaded.network.architecture.coarse_width) == (8, 12)
    assert layers[1].conv.out_channels == 8 and layers[5].conv.out_channels == 12
    assert layers[0].conv.in_channels == 6 and len(loaded.metadata["input_channels"]) == 6
    assert loaded.preprocess_config.context_slices == 1
    out = tmp_path / "mask.nii.gz"
    assert main(["segment", "--model", str(model), "--t1", str(cases[0].t1), "--flair", str(cases[0].flair),
                 "--out", str(out), "--device", "cpu"]) == 0
    assert sitk.ReadImage(str(out)).GetSize() == sitk.ReadImage(str(cases[0].flair)).GetSize()
    t1, flair = respaced_copy(cases[0], tmp_path / "thicker", (1.0, 1.0, 2.0))
    capsys.readouterr()
    assert main(["segment", "--model", str(model), "--t1", str(t1), "--flair", str(flair),
                 "--out", str(tmp_path / "thicker.nii.gz"), "--device", "cpu"]) == 0
    assert "FLAIR spacing" in capsys.readouterr().err  # its slice distance matters to this model
    assert main(["bench", "step", "--model", str(model), "--device", "cpu", "--repeats", "1"]) == 0
    assert "training step" in capsys.readouterr().out


def test_segment_writes_a_mask_on_the_flair_grid_and_reports_volume(workspace, tmp_path, capsys):
    _, cases, model = workspace
    out, prob = tmp_path / "mask.nrrd", tmp_path / "prob.nii.gz"
    assert main(["segment", "--model", str(model), "--t1", str(cases[0].t1), "--flair", str(cases[0].flair),
                 "--out", str(out), "--prob", str(prob), "--device", "cpu"]) == 0
    flair, mask = sitk.ReadImage(str(cases[0].flair)), sitk.ReadImage(str(out))
    assert mask.GetSize() == flair.GetSize() and mask.GetDirection() == flair.GetDirection()
    assert np.allclose(mask.GetOrigin(), flair.GetOrigin())
    assert np.allclose(mask.GetSpacing(), flair.GetSpacing())
    assert prob.exists()
    assert " mL in " in capsys.readouterr().out


def test_segment_batch_writes_one_mask_per_case(workspace, tmp_path):
    root, cases, model = workspace
    assert main(["segment", "--model", str(model), "--cases", str(root / "target.csv"),
                 "--out-dir", str(tmp_path), "--device", "cpu"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{c.case_id}_wmh_pred.nii.gz" for c in cases[3:]]


def test_adapt_with_auto_layers_says_what_it_chose_and_records_the_parent(workspace, tmp_path, capsys):
    root, _, model = workspace
    out = tmp_path / "adapted.safetensors"
    assert main(["adapt", "--model", str(model), "--cases", str(root / "target.csv"),
                 "--tune-layers", "auto", "--out", str(out), *FAST_ADAPT]) == 0
    printed = capsys.readouterr().out
    assert "--tune-layers auto: 2 labelled scan(s)" in printed
    metadata = read_metadata(out)
    assert metadata["training"]["n_cases"] == 2 and metadata["parent_sha256"] == file_sha256(model)


def test_train_init_from_a_2d_model_adds_context_and_starts_from_its_weights(workspace, tmp_path):
    root, _, parent = workspace
    model = tmp_path / "continued.safetensors"
    assert main(["train", "--train", str(root / "train.csv"), "--val", str(root / "val.csv"),
                 "--out", str(model), *FAST_TRAIN, "--epochs", "1", "--lr", "1e-9",
                 "--init-from", str(parent), "--context-slices", "1"]) == 0
    loaded, before = load_model(model), load_model(parent)
    assert loaded.metadata["parent_sha256"] == file_sha256(parent)
    assert loaded.metadata["training"]["kind"] == "continued"
    assert loaded.preprocess_config.context_slices == 1 and len(loaded.metadata["input_channels"]) == 6
    assert loaded.network.architecture.fine_width == before.network.architecture.fine_width
    # a learning rate of 1e-9 barely moves the weights: they are the parent's, not a fresh draw
    deep_now, deep_before = loaded.network.layers[8].conv.weight, before.network.layers[8].conv.weight
    assert torch.allclose(deep_now, deep_before, atol=1e-6)
    first = loaded.network.layers[0].conv.weight
    assert torch.allclose(first[:, :2], before.network.layers[0].conv.weight, atol=1e-6)
    assert first[:, 2:].abs().max() < 1e-6


@pytest.mark.parametrize("parent_context, options, message", [
    (0, ["--fine-width", "8"], "keeps the model's layer widths"),
    (1, ["--context-slices", "0"], "--context-slices cannot drop them"),
])
def test_train_init_from_refuses_new_widths_or_fewer_context_slices(
        workspace, tmp_path, capsys, parent_context, options, message):
    root, _, parent = workspace
    if parent_context:
        parent = tmp_path / "context.safetensors"
        assert main(["train", "--train", str(root / "train.csv"), "--val", str(root / "val.csv"),
                     "--out", str(parent), *FAST_TRAIN, "--epochs", "1", "--context-slices", "1"]) == 0
    model = tmp_path / "continued.safetensors"
    assert main(["train", "--train", str(root / "train.csv"), "--val", str(root / "val.csv"),
                 "--out", str(model), *FAST_TRAIN, "--init-from", str(parent), *options]) == 2
    error = capsys.readouterr().err
    assert message in error and parent.name in error and not model.exists()


def test_bad_input_exits_2_with_one_line_naming_the_file_and_writes_nothing(workspace, tmp_path, capsys):
    root, cases, model = workspace
    out = tmp_path / "mask.nii.gz"
    code = main(["segment", "--model", str(model), "--t1", str(tmp_path / "absent_t1.nii.gz"),
                 "--flair", str(cases[0].flair), "--out", str(out), "--device", "cpu"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "absent_t1.nii.gz" in error and "not found" in error
    assert len(error.splitlines()) == 1 and not out.exists()


def test_adapt_onto_the_parent_model_is_refused(workspace, capsys):
    root, _, model = workspace
    before = model.read_bytes()
    assert main(["adapt", "--model", str(model), "--cases", str(root / "target.csv"), "--tune-layers", "2",
                 "--out", str(model), *FAST_ADAPT]) == 2
    assert "is also an input" in capsys.readouterr().err and model.read_bytes() == before


def test_train_refuses_to_overwrite_an_existing_model(workspace, capsys):
    root, _, model = workspace
    before = model.read_bytes()
    assert main(["train", "--train", str(root / "train.csv"), "--val", str(root / "val.csv"),
                 "--out", str(model), *FAST_TRAIN]) == 2
    assert "already exists" in capsys.readouterr().err and model.read_bytes() == before


@pytest.mark.parametrize("option, value, message", [
    ("--lr-decay", "1.5", "argument --lr-decay: must lie in (0, 1]"),
    ("--lesion-balance", "-0.1", "argument --lesion-balance: must lie in [0, 1]"),
    ("--coarse-width", "0", "argument --coarse-width: must be at least 1"),
    ("--context-slices", "-1", "argument --context-slices: must be at least 0"),
])
def test_train_refuses_a_rate_decay_lesion_balance_width_or_context_out_of_range(
        workspace, tmp_path, capsys, option, value, message):
    root, _, _ = workspace
    model = tmp_path / "new.safetensors"
    with pytest.raises(SystemExit) as refused:
        main(["train", "--train", str(root / "train.csv"), "--val", str(root / "val.csv"),
              "--out", str(model), *FAST_TRAIN, option, value])
    assert refused.value.code == 2
    assert message in capsys.readouterr().err and not model.exists()


def test_bench_segment_without_cases_names_the_missing_option(workspace, capsys):
    _, _, model = workspace
    assert main(["bench", "segment", "--model", str(model)]) == 2
    assert "--cases" in capsys.readouterr().err
