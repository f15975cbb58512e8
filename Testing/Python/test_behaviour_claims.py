"""Tests named for a promise, each shown to fail when the promise is broken (docs/claims.md).

They replace tests that could not fail on the bug they were named for: layers before the tuned
ones never receive gradients, so "frozen layers stay bit-identical" needs the first-layers mode,
where gradients pass through the frozen deeper layers; a cancel right after the start never
reaches the library's cancel path; an in-sample rule beats the fixed threshold by construction.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from phantom import save_tiny_model, write_phantom_case

from WMHDomainAdaptLib.adaptation import (
    AdaptConfig,
    adapt,
    draw_training_patches,
    fine_tune,
    held_out_slices,
    is_validation_slice,
)
from WMHDomainAdaptLib.cases import PreparedCase, prepare_cases
from WMHDomainAdaptLib.cli import main
from WMHDomainAdaptLib.dataset import write_manifest
from WMHDomainAdaptLib.decision import THRESHOLD_CANDIDATES, best_threshold
from WMHDomainAdaptLib.errors import Cancelled
from WMHDomainAdaptLib.metrics import pooled_dice
from WMHDomainAdaptLib.model import DEPTH
from WMHDomainAdaptLib.modelfile import load_model
from WMHDomainAdaptLib.network_input import InputSpec
from WMHDomainAdaptLib.scan_threshold import THRESHOLD_GRID, ScanEvidence, fit_scan_threshold
from WMHDomainAdaptLib.training import masked_bce

QUICK = AdaptConfig.from_dict(dict(patches_per_case=48, patch_size=32, batch_size=16, epochs=3, patience=3))


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans")
    return [write_phantom_case(folder, seed, lesion_gain=1.4) for seed in (10, 11)]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("source") / "source.safetensors")


def test_tuning_the_first_layers_leaves_every_deeper_layer_and_its_statistics_bit_identical(source, scans):
    """Here gradients flow through the frozen layers: freezing fewer, or letting their batch-norm
    statistics move, changes them."""
    model = load_model(source)
    prepared = prepare_cases(scans, model.preprocess_config, need_label=True)
    tuned, _, _, _ = fine_tune(
        model.network, model.input_spec, prepared, 3, QUICK, torch.device("cpu"), tune_first=True
    )
    before, after = model.network.state_dict(), tuned.state_dict()
    for name, value in before.items():
        layer = int(name.split(".")[1])
        if layer >= 3:
            assert torch.equal(value, after[name]), name  # weights and running statistics alike
    assert any(not torch.equal(before[n], after[n]) for n in before if int(n.split(".")[1]) < 3)
    assert tuned.frozen == frozenset(range(3, DEPTH))


def test_a_library_adaptation_cancelled_midway_raises_and_writes_nothing(source, scans, tmp_path):
    cancel, seen = CancelAfterFirstEpoch(), []
    out = tmp_path / "adapted.safetensors"
    with pytest.raises(Cancelled):
        adapt(
            source,
            scans,
            out,
            tune_layers=2,
            device="cpu",
            config=QUICK,
            progress=lambda event: (seen.append(event.task), cancel(event)),
            cancel=cancel,
        )
    assert "train" in seen  # the cancel came during training, not before it
    assert not out.exists() and not list(tmp_path.iterdir())


class CancelAfterFirstEpoch:
    def __init__(self):
        from WMHDomainAdaptLib.progress import CancelToken

        self.token = CancelToken()

    def __call__(self, event) -> None:
        if event.task == "train" and event.done >= 1:
            self.token.cancel()

    def check(self) -> None:
        self.token.check()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled


def test_the_training_loss_ignores_other_pathology():
    """What the network predicts on label-2 voxels must not move the loss."""
    labels = torch.tensor([[0.0, 1.0, 2.0, 2.0]])
    logits = torch.tensor([[-2.0, 3.0, 5.0, -5.0]])
    other = logits.clone()
    other[0, 2:] = torch.tensor([-9.0, 9.0])
    assert masked_bce(logits, labels) == masked_bce(other, labels)
    assert masked_bce(logits, labels) != masked_bce(logits, torch.tensor([[0.0, 1.0, 0.0, 0.0]]))


def test_the_threshold_chosen_on_validation_is_the_one_with_the_highest_pooled_dice():
    rng = np.random.default_rng(0)
    label = (rng.random((4, 16, 16)) < 0.2).astype(np.uint8)
    # lesions at 0.65, background at 0.35 plus noise: only thresholds between them score well
    probability = np.where(label == 1, 0.65, 0.35) + rng.normal(0, 0.05, label.shape)
    threshold, dice = best_threshold([probability], [label])
    scores = [pooled_dice([probability], [label], t) for t in THRESHOLD_CANDIDATES]
    assert dice == max(scores) > min(scores) + 0.3 and 0.4 <= threshold <= 0.6


def test_the_rule_fit_recovers_a_contrast_dependence_planted_in_the_evidence():
    """Scans whose best threshold is 0.1 + 0.1 x contrast: the fit must find it (out of sample
    too), where a fit that ignored the contrast would not."""
    rng = np.random.default_rng(1)

    def scan(contrast: float) -> ScanEvidence:
        best = np.round(np.clip(0.1 + 0.1 * contrast, 0.2, 0.8), 2)
        dice = np.clip(0.9 - 2.0 * np.abs(THRESHOLD_GRID - best), 0, 1)
        return ScanEvidence(dice, contrast, 0.95, 10)

    fitted = [scan(c) for c in rng.uniform(1.5, 6.5, 40)]
    held_out = [scan(c) for c in rng.uniform(1.5, 6.5, 20)]
    fit = fit_scan_threshold(fitted, fixed=0.5)
    assert fit.rule.slope == pytest.approx(0.1, abs=0.02)
    cuts = [fit.rule.for_contrast(s.contrast, 0.5) for s in held_out]
    columns = [int(np.argmin(np.abs(THRESHOLD_GRID - cut))) for cut in cuts]
    rule_dice = np.mean([s.dice_at[c] for s, c in zip(held_out, columns)])
    fixed_dice = np.mean([s.dice_at[int(np.argmin(np.abs(THRESHOLD_GRID - 0.5)))] for s in held_out])
    assert rule_dice > fixed_dice + 0.2


def test_adaptation_is_deterministic_for_a_seed(source, scans, tmp_path):
    runs = []
    for name in ("first", "second"):
        torch.manual_seed(len(name))  # whatever ran before must not decide the result
        result = adapt(
            source, scans, tmp_path / f"{name}.safetensors", tune_layers=3, device="cpu", config=QUICK
        )
        runs.append(load_model(result.path).network.state_dict())
    assert all(torch.equal(runs[0][key], runs[1][key]) for key in runs[0])


SMALL_TRAINING = ["--steps-per-epoch", "2", "--batch-size", "8", "--patch-size", "32", "--device", "cpu",
                  "--threads", "1"]


def test_training_on_from_a_model_is_deterministic_for_a_seed(source, scans, tmp_path):
    manifest = write_manifest(scans, tmp_path / "cases.csv")
    weights = []
    for name in ("first", "second"):
        torch.manual_seed(len(name))
        out = tmp_path / f"{name}.safetensors"
        assert main(["train", "--train", str(manifest), "--val", str(manifest), "--init-from", str(source),
                     "--out", str(out), "--epochs", "1", *SMALL_TRAINING]) == 0
        weights.append(load_model(out).network.state_dict())
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_training_stopped_with_ctrl_c_keeps_its_best_model_so_far(scans, tmp_path):
    manifest = write_manifest(scans, tmp_path / "cases.csv")
    out = tmp_path / "model.safetensors"
    command = [sys.executable, "-m", "WMHDomainAdaptLib", "train", "--train", str(manifest), "--val",
               str(manifest), "--out", str(out), "--epochs", "500", "--no-n4", *SMALL_TRAINING]
    # a run started from a background job inherits an ignored SIGINT; Ctrl-C at a terminal is not ignored
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not out.exists():  # the checkpoint of the first epoch
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    training = load_model(out).metadata["training"]
    assert training["status"] == "interrupted: best model so far" and training["interrupted"]
    assert 1 <= training["best_epoch"] < 500


def test_validation_slices_are_never_trained_on():
    """Adaptation holds out every 5th slice; a training patch never comes from one of them."""
    depth, size = 20, 24
    image = np.ones((2, depth, size, size), np.float32)
    held_out = is_validation_slice(np.arange(depth), QUICK.validation_every)
    image[:, held_out] = 1000.0  # a marker only the held-out slices carry
    label = np.zeros((depth, size, size), np.uint8)
    label[:, 10:14, 10:14] = 1
    case = PreparedCase(
        "marked", image, np.ones(label.shape, bool), label, sitk.Image(size, size, depth, sitk.sitkUInt8)
    )
    images, _ = draw_training_patches([case], InputSpec(("t1", "flair")), QUICK, np.random.default_rng(0))
    assert len(images) and not (images == 1000.0).any()
    validation = held_out_slices([case], InputSpec(("t1", "flair")), QUICK.validation_every)
    assert all((group == 1000.0)[:, :, 8:16, 8:16].all() for group, _ in validation)
