"""`wmhda train`: train the 15-layer network on a labelled dataset (source model, or from scratch)."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from ..cases import prepare_cases
from ..dataset import load_datasets
from ..devices import resolve_device
from ..errors import InputError
from ..model import Architecture, WMHNet, seeded_network, with_input_channels
from ..modelfile import MODEL_SUFFIX, build_metadata, file_sha256, load_model, save_model
from ..network_input import InputSpec, input_channel_names
from ..outputs import check_outputs, check_suffix
from ..preprocess import PreprocessConfig
from ..training import TrainConfig, choose_threshold, train_network
from ._common import (
    add_device_argument,
    add_progress_argument,
    at_least,
    patch_size,
    positive_float,
    progress_printer,
    unit_interval,
)

NAME = "train"
HELP = "train the network on labelled T1 + FLAIR scans (source model, or a target model from scratch)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--train", required=True, nargs="+",
                        help="training cases: one or more manifest CSVs or folders")
    parser.add_argument("--val", required=True, nargs="+",
                        help="validation cases (early stopping, threshold): manifests or folders")
    parser.add_argument("--out", required=True, help="model file to write (.safetensors)")
    parser.add_argument("--domain", default="source", help="name of the training domain (recorded)")
    parser.add_argument("--epochs", type=at_least(1), default=defaults.epochs)
    parser.add_argument("--steps-per-epoch", type=at_least(1), default=defaults.steps_per_epoch)
    parser.add_argument("--batch-size", type=at_least(1), default=defaults.batch_size)
    parser.add_argument("--patch-size", type=patch_size, default=defaults.patch_size)
    parser.add_argument("--lr", type=positive_float, default=defaults.learning_rate)
    parser.add_argument("--lr-decay", type=unit_interval(), default=defaults.lr_decay,
                        help="learning rate factor after each epoch (default: %(default)s)")
    parser.add_argument("--patience", type=at_least(1), default=defaults.patience)
    parser.add_argument("--lesion-balance", type=unit_interval(low_open=False),
                        default=defaults.lesion_balance,
                        help="share of lesion patches centred on a lesion drawn per lesion rather than "
                             "per lesion voxel, so small lesions are seen as often as large ones "
                             "(0 to 1, default: %(default)s)")
    parser.add_argument("--seed", type=at_least(0), default=defaults.seed)
    architecture = Architecture()
    parser.add_argument("--fine-width", type=at_least(1),
                        help=f"channels of the full-resolution layers 1, 2 and 14 "
                             f"(default: {architecture.fine_width})")
    parser.add_argument("--coarse-width", type=at_least(1),
                        help=f"channels of the half-resolution layers 3 to 13 "
                             f"(default: {architecture.coarse_width})")
    parser.add_argument("--init-from", metavar="MODEL",
                        help="start from this model's weights instead of He initialization, keeping its "
                             "widths and preprocessing; with --context-slices the added input channels "
                             "start at zero weight, so training begins from the model as it is")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--no-n4", action="store_true", help="skip N4 bias-field correction")
    parser.add_argument("--context-slices", type=at_least(0),
                        help="add the T1 and FLAIR of this many slices above and below as input "
                             "channels (through-plane context; default: 0, or the --init-from model's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    add_device_argument(parser)
    add_progress_argument(parser)


def recorded_arguments(args: argparse.Namespace) -> dict:
    """The command's options as given, so a model file says how to train it again."""
    return {name: value for name, value in sorted(vars(args).items())
            if isinstance(value, (str, int, float, bool, list, type(None)))}


def starting_point(args: argparse.Namespace) -> tuple[WMHNet, PreprocessConfig, str | None]:
    """The network to train, its preprocessing and its parent's hash (None when trained from scratch)."""
    if args.init_from is None:
        context = 0 if args.context_slices is None else args.context_slices
        preprocessing = PreprocessConfig(n4=not args.no_n4, context_slices=context)
        widths = {name: value for name, value in
                  (("fine_width", args.fine_width), ("coarse_width", args.coarse_width)) if value is not None}
        architecture = Architecture(in_channels=len(input_channel_names(preprocessing)), **widths)
        return seeded_network(architecture, args.seed), preprocessing, None
    parent_path = Path(args.init_from)
    parent = load_model(parent_path)
    if args.fine_width is not None or args.coarse_width is not None:
        raise InputError(parent_path, "--init-from keeps the model's layer widths; drop --fine-width "
                                      "and --coarse-width")
    if args.no_n4 and parent.preprocess_config.n4:
        raise InputError(parent_path, "the model was trained on N4-corrected images; --no-n4 would "
                                      "change its input")
    recorded = parent.preprocess_config.context_slices
    context = recorded if args.context_slices is None else args.context_slices
    if context < recorded:
        raise InputError(parent_path, f"the model reads {recorded} slice(s) above and below; "
                                      f"--context-slices cannot drop them")
    preprocessing = replace(parent.preprocess_config, context_slices=context)
    network = with_input_channels(parent.network, len(input_channel_names(preprocessing)))
    return network, preprocessing, file_sha256(parent_path)


def run(args: argparse.Namespace) -> int:
    out = check_suffix(args.out, MODEL_SUFFIX)
    check_outputs([out], [args.init_from])
    if out.exists() and not args.overwrite:
        raise InputError(out, "model file already exists; choose another name or pass --overwrite")
    network, preprocessing, parent_sha256 = starting_point(args)
    architecture = network.architecture
    device = resolve_device(args.device)
    config = TrainConfig(patch_size=args.patch_size, batch_size=args.batch_size, learning_rate=args.lr,
                         lr_decay=args.lr_decay, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                         patience=args.patience, lesion_balance=args.lesion_balance,
                         augment=not args.no_augment, seed=args.seed)
    progress = progress_printer(args)
    began = time.monotonic()
    train_cases = prepare_cases(load_datasets(args.train), preprocessing, need_label=True, progress=progress)
    val_cases = prepare_cases(load_datasets(args.val), preprocessing, need_label=True, progress=progress)
    summary = {"kind": "from_scratch" if args.init_from is None else "continued",
               "domain": args.domain, "n_cases": len(train_cases),
               "case_ids": [c.case_id for c in train_cases], "val_case_ids": [c.case_id for c in val_cases],
               "flair_spacing": list(train_cases[0].spacing_xyz), "config": config.to_dict(),
               "device": str(device), "arguments": recorded_arguments(args)}

    def checkpoint(best_state: dict, dice: float, epoch: int) -> None:
        """Keep the best weights on disk as they improve: a killed run leaves its last good state."""
        snapshot = WMHNet(architecture)
        snapshot.load_state_dict(best_state)
        status = {**summary, "status": f"checkpoint: best so far at epoch {epoch}", "best_val_dice": dice}
        save_model(out, snapshot, build_metadata(snapshot, preprocessing, 0.5, status, parent_sha256),
                   overwrite=True)

    spec = InputSpec.of(preprocessing)
    result = train_network(network, spec, train_cases, val_cases, config, device, progress,
                           on_improve=checkpoint)
    if result.best_epoch == 0:
        print("stopped before the first epoch ended: no model written")
        return 130
    threshold, val_dice = choose_threshold(network, spec, val_cases, device)
    training = {
        **summary, "status": "interrupted: best model so far" if result.interrupted else "complete",
        "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
        "best_val_dice": result.best_val_dice, "val_dice_at_threshold": val_dice,
        "interrupted": result.interrupted, "seconds": round(time.monotonic() - began, 1),
        "history": result.history,
    }
    save_model(out, network.cpu(), build_metadata(network, preprocessing, threshold, training, parent_sha256),
               overwrite=True)  # replaces this run's own checkpoint
    state = "interrupted; best model so far" if result.interrupted else "done"
    print(f"{state}: {out} (best epoch {result.best_epoch}/{result.epochs_run}, validation Dice "
          f"{val_dice:.3f} at threshold {threshold:.2f}, {training['seconds']:.0f} s on {device})")
    return 130 if result.interrupted else 0
