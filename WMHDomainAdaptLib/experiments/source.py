"""The experiment's source model: a given model file, or one trained once and kept in the output folder.

Training the source model is the longest single step of an experiment, so a resumed experiment
loads the file written the first time instead of training again.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from ..errors import Cancelled
from ..model import Architecture, seeded_network
from ..modelfile import LoadedModel, build_metadata, load_model, save_model
from ..network_input import InputSpec
from ..progress import CancelToken, ProgressCallback
from ..training import choose_threshold, train_network
from .config import ExperimentConfig
from .data import load_prepared_set, resolve_dataset

SOURCE_MODEL_FILE = "source_model.safetensors"


def obtain_source_model(config: ExperimentConfig, root: Path, out: Path, device: torch.device,
                        progress: ProgressCallback | None = None,
                        cancel: CancelToken | None = None) -> LoadedModel:
    """Load the configured model file, or the one trained earlier, or train it now."""
    if config.data.source_model:
        return load_model(resolve_dataset(root, config.data.source_model), device)
    path = out / SOURCE_MODEL_FILE
    if path.is_file():
        return load_model(path, device)
    return train_source_model(config, root, out, device, progress, cancel)


def train_source_model(config: ExperimentConfig, root: Path, out: Path, device: torch.device,
                       progress: ProgressCallback | None = None,
                       cancel: CancelToken | None = None) -> LoadedModel:
    began = time.monotonic()
    cache = out / "cache"
    train = load_prepared_set(root, config.data.source_train, config.preprocess, cache, "source_train",
                              progress, cancel)
    val = load_prepared_set(root, config.data.source_val, config.preprocess, cache, "source_val",
                            progress, cancel)
    recipe = dataclasses.replace(config.source_training, seed=config.seed)
    spec = InputSpec.of(config.preprocess)
    network = seeded_network(Architecture(in_channels=spec.size), config.seed)
    result = train_network(network, spec, train, val, recipe, device, progress, cancel)
    if result.interrupted:
        raise Cancelled("source training interrupted; it restarts on the next run")
    threshold, val_dice = choose_threshold(network, spec, val, device)
    training = {"kind": "from_scratch", "domain": "source", "n_cases": len(train),
                "case_ids": [c.case_id for c in train], "config": recipe.to_dict(),
                "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                "best_val_dice": result.best_val_dice, "val_dice_at_threshold": val_dice,
                "seconds": round(time.monotonic() - began, 1), "device": str(device)}
    path = save_model(out / SOURCE_MODEL_FILE, network.cpu(),
                      build_metadata(network, config.preprocess, threshold, training))
    return load_model(path, device)
