"""Adapting a fitted source model to a new protocol from a few labelled scans.

The paper's recipe: freeze the shallowest i = d - K layers, fine-tune the last K on the new
scans. Because frozen layers never change, their output for a fixed set of training patches is
computed once and the tail trains on those cached features: the clinician's "Adapt model" then
costs only the tail's forward and backward passes. When the cache would not fit the memory
budget, the frozen head runs on the fly instead; both paths give the same result for a seed.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .cases import PreparedCase, prepare_cases
from .dataset import Case
from .decision import best_threshold
from .devices import resolve_device
from .errors import Cancelled, InputError
from .inference import brain_box, check_channels
from .metrics import pooled_dice
from .model import DEPTH, State, WMHNet
from .modelfile import build_metadata, file_sha256, load_model, save_model
from .network_input import InputSpec
from .patches import PatchSampler, flip_left_right
from .progress import CancelToken, ProgressCallback
from .recommendation import TUNE_LAYERS_BY_SCANS, recommended_tune_layers, resolve_tune_layers  # noqa: F401
from .training import TrainConfig, TrainResult, fit, seed_everything

VALIDATION_SLICES_PER_BATCH = 8


# The training loop's settings for adaptation: a fixed patch set (no steps per epoch, no fresh
# augmentation, which caching would not allow), a faster decay and earlier stopping than training.
ADAPT_TRAINING = TrainConfig(lr_decay=0.9, epochs=20, steps_per_epoch=0, patience=5, augment=False)
# The training settings an adaptation recipe may set; with its own fields, its flat dict (the
# recorded hyperparameters, the study's config files and recipe fingerprint).
TUNABLE_TRAINING = ("patch_size", "batch_size", "learning_rate", "lr_decay", "weight_decay", "epochs",
                    "patience", "lesion_fraction", "seed")


@dataclass(frozen=True)
class AdaptConfig:
    """The adaptation recipe: the training loop's settings, plus what only adaptation needs."""

    training: TrainConfig = field(default_factory=lambda: dataclasses.replace(ADAPT_TRAINING))
    patches_per_case: int = 384      # fixed training patch set drawn from each scan
    validation_every: int = 5        # every 5th axial slice is held out for validation
    cache_budget_mb: int = 2048      # frozen-layer features are cached up to this size

    def to_dict(self) -> dict:
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "training"}
        return {**own, **{name: getattr(self.training, name) for name in TUNABLE_TRAINING}}

    @classmethod
    def from_dict(cls, values: dict) -> AdaptConfig:
        """From the flat dict `to_dict` writes (any subset; the rest from the defaults)."""
        own = {f.name for f in dataclasses.fields(cls)} - {"training"}
        unknown = set(values) - own - set(TUNABLE_TRAINING)
        if unknown:
            raise TypeError(f"unknown adaptation setting(s): {', '.join(sorted(unknown))}")
        training = dataclasses.replace(ADAPT_TRAINING, **{k: v for k, v in values.items() if k not in own})
        return cls(training, **{k: v for k, v in values.items() if k in own})

    def replace(self, **values) -> AdaptConfig:
        return self.from_dict({**self.to_dict(), **values})


@dataclass
class AdaptationResult:
    path: Path | None
    metadata: dict
    train: TrainResult
    network: WMHNet


@dataclass
class PatchSet:
    """A fixed set of patches, either as chain states after the frozen layers or as images."""

    states: list[State] | None   # cached chain states, one per mini-batch
    images: list[torch.Tensor]   # images per mini-batch (only when not cached)
    labels: list[torch.Tensor]


def is_validation_slice(z: np.ndarray, every: int) -> np.ndarray:
    return z % every == every // 2


def draw_training_patches(cases: list[PreparedCase], spec: InputSpec, config: AdaptConfig,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A fixed training patch set from the slices that are not held out, with fixed random flips."""
    sampler = PatchSampler(cases, spec, config.training.patch_size, config.training.lesion_fraction,
                           slice_filter=lambda z: ~is_validation_slice(z, config.validation_every))
    count = config.patches_per_case * len(cases)
    images, labels = sampler.sample(count, rng)
    flip_left_right(images, labels, rng)  # fixed flips: the augmentation that caching allows
    return images, labels


def held_out_slices(cases: list[PreparedCase], spec: InputSpec, every: int
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Whole held-out axial slices of each scan, cropped to the brain, for validation.

    Whole slices, not lesion-rich patches, so validation Dice and the chosen threshold see the
    real balance of lesion and normal tissue. Voxels outside the brain get label 2 (ignored), as
    inference zeroes them anyway.
    """
    groups = []
    for case in cases:
        z_range, y_range, x_range = brain_box(case.brain_mask)
        zs = np.arange(z_range.start, z_range.stop)
        zs = zs[is_validation_slice(zs, every)]
        if not len(zs):
            continue
        labels = np.where(case.brain_mask, case.label, 2).astype(np.uint8)
        groups.append((case.network_input(spec, zs, y_range, x_range),
                       np.ascontiguousarray(labels[zs][:, None, y_range, x_range])))
    if not groups or not any((labels == 1).any() for _, labels in groups):
        ids = ", ".join(c.case_id for c in cases)
        raise InputError(None, f"the held-out slices of {ids} hold no lesion; give scans with more "
                               "lesions or more scans")
    return groups


def state_nbytes(network: WMHNet, start: int, patch_size: int, channels: int) -> int:
    with torch.no_grad():
        features, skip = network.encode(torch.zeros(1, channels, patch_size, patch_size), start)
    return 4 * (features.numel() + (skip.numel() if skip is not None else 0))


@torch.no_grad()
def encode_batches(network: WMHNet, start: int, images: list[torch.Tensor]) -> list[State]:
    network.eval()
    return [network.encode(batch, start) for batch in images]


def make_patch_set(network: WMHNet, start: int, groups: list[tuple[np.ndarray, np.ndarray]],
                   batch_size: int, device: torch.device, cache: bool) -> PatchSet:
    """Mini-batches of each (images, labels) group, with their cached chain states if `cache`."""
    image_batches, label_batches = [], []
    for images, labels in groups:
        for i in range(0, len(images), batch_size):
            image_batches.append(torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(device))
            label_batches.append(torch.from_numpy(np.ascontiguousarray(labels[i:i + batch_size])).to(device))
    if cache:  # the images are not needed once their states are cached: free them
        return PatchSet(encode_batches(network, start, image_batches), [], label_batches)
    return PatchSet(None, image_batches, label_batches)


def batches_of(network: WMHNet, start: int, patches: PatchSet, order: list[int]):
    """Mini-batches in `order`, from the cache or by running the frozen head now."""
    for index in order:
        if patches.states is not None:
            state = patches.states[index]
        else:
            with torch.no_grad():
                state = network.encode(patches.images[index], start)
        yield state, patches.labels[index]


@torch.no_grad()
def patch_probabilities(network: WMHNet, start: int, patches: PatchSet) -> list[np.ndarray]:
    network.eval()
    probabilities = [torch.sigmoid(network.forward_from(start, state)).cpu().numpy()
                     for state, _ in batches_of(network, start, patches, list(range(len(patches.labels))))]
    return probabilities


def patch_validator(network: WMHNet, start: int, patches: PatchSet):
    labels = [batch.cpu().numpy() for batch in patches.labels]

    def validate() -> float:
        return pooled_dice(patch_probabilities(network, start, patches), labels)
    return validate


def choose_patch_threshold(network: WMHNet, start: int, patches: PatchSet) -> float:
    labels = [batch.cpu().numpy() for batch in patches.labels]
    return best_threshold(patch_probabilities(network, start, patches), labels)[0]


def fine_tune(network: WMHNet, spec: InputSpec, cases: list[PreparedCase], tune_layers: int,
              config: AdaptConfig, device: torch.device, cache: bool | None = None,
              progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
              tune_first: bool = False
              ) -> tuple[WMHNet, TrainResult, float, bool]:
    """Fine-tune the last `tune_layers` layers of a copy of `network` (it is left as it was).

    Returns the tuned network, the training record, the chosen threshold and whether features
    were cached. `cache=None` caches when the features fit `config.cache_budget_mb`.
    `tune_first` tunes the first layers instead (Shirokikh et al. 2020); nothing is then cached.
    """
    network = copy.deepcopy(network).to(device)
    if tune_first:
        start, cache = 0, False
        network.freeze(range(tune_layers, DEPTH))
    else:
        start = DEPTH - tune_layers
        network.freeze_first(start)
    rng = seed_everything(config.training.seed)
    train_images, train_labels = draw_training_patches(cases, spec, config, rng)
    validation = held_out_slices(cases, spec, config.validation_every)
    if cache is None:
        pixels = train_images[:, 0].size + sum(images[:, 0].size for images, _ in validation)
        patch = config.training.patch_size
        per_pixel = state_nbytes(network.cpu(), start, patch, train_images.shape[1]) / patch ** 2
        cache = per_pixel * pixels <= config.cache_budget_mb * 2**20
        network.to(device)
    train_set = make_patch_set(network, start, [(train_images, train_labels)], config.training.batch_size,
                               device, cache)
    val_set = make_patch_set(network, start, validation, VALIDATION_SLICES_PER_BATCH, device, cache)
    order_rng = np.random.default_rng(config.training.seed + 1)

    def epoch_batches(epoch: int):
        return batches_of(network, start, train_set, list(order_rng.permutation(len(train_set.labels))))

    result = fit(network, start, epoch_batches, patch_validator(network, start, val_set),
                 config.training, device, progress, cancel)
    threshold = choose_patch_threshold(network, start, val_set)
    return network.eval(), result, threshold, cache


def check_request(source: Path, out: Path | None, n_cases: int, tune_layers: int | str,
                  overwrite: bool) -> tuple[int, str]:
    """Validate the request before any work; returns K and why."""
    if n_cases < 1:
        raise InputError("--cases", "adaptation needs at least one labelled scan (N = 0)")
    tune_layers, reason = resolve_tune_layers(tune_layers, n_cases)
    if out is not None:
        if out.resolve() == source.resolve():
            raise InputError(out, "the adapted model must be a new file, not the parent model")
        if out.exists() and not overwrite:
            raise InputError(out, "file already exists; choose another name")
    return tune_layers, reason


def adapt(source_model_path: str | Path, cases: list[Case], out_path: str | Path | None,
          tune_layers: int | str = "auto", device: str = "auto", config: AdaptConfig | None = None,
          progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
          overwrite: bool = False, cache: bool | None = None) -> AdaptationResult:
    """Adapt a model file to the protocol of `cases` (labelled) and save it as a new file."""
    config = config or AdaptConfig()
    source = Path(source_model_path)
    out = Path(out_path) if out_path is not None else None
    tune_layers, reason = check_request(source, out, len(cases), tune_layers, overwrite)
    began = time.monotonic()
    torch_device = resolve_device(device)
    model = load_model(source, torch_device)
    prepared = prepare_cases(cases, model.preprocess_config, need_label=True, progress=progress,
                             cancel=cancel)
    for case in prepared:
        check_channels(model, case)
    network, result, threshold, cached = fine_tune(model.network, model.input_spec, prepared, tune_layers,
                                                   config, torch_device, cache, progress, cancel)
    if result.interrupted:
        raise Cancelled("adaptation cancelled; no model was written")
    training = {
        "kind": "adaptation", "domain": "target", "n_cases": len(cases),
        "case_ids": [c.case_id for c in cases],
        "flair_spacing": list(prepared[0].spacing_xyz),
        "tune_layers": tune_layers, "tune_layers_reason": reason, "hyperparameters": config.to_dict(),
        "best_val_dice": result.best_val_dice, "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run, "cached_features": cached,
        "seconds": round(time.monotonic() - began, 1), "parent": source.name,
        "parent_training": model.metadata.get("training", {}),
    }
    metadata = build_metadata(network, model.preprocess_config, threshold, training,
                              parent_sha256=file_sha256(source))
    saved = save_model(out, network.cpu(), metadata, overwrite=overwrite) if out is not None else None
    return AdaptationResult(saved, metadata, result, network)
