"""`wmhda adapt`: fine-tune the last K layers of a model on a few labelled scans of a new protocol."""

from __future__ import annotations

import argparse

from ..adaptation import AdaptConfig, adapt
from ..dataset import load_cases
from ..modelheader import MODEL_SUFFIX
from ..outputs import check_outputs, check_suffix
from ..recommendation import resolve_tune_layers
from ._common import (
    add_device_argument,
    add_progress_argument,
    at_least,
    patch_size,
    positive_float,
    progress_printer,
)

NAME = "adapt"
HELP = "adapt a model to a new protocol from a few labelled scans (freeze the first layers, tune the rest)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = AdaptConfig().to_dict()
    parser.add_argument("--model", required=True, help="the parent (source) model file")
    parser.add_argument("--cases", required=True, help="labelled new-protocol scans: manifest or folder")
    parser.add_argument("--out", required=True, help="the adapted model file to write (a new file)")
    parser.add_argument("--tune-layers", default="auto",
                        help="number K of last layers to fine-tune, or auto (from the number of scans)")
    parser.add_argument("--epochs", type=at_least(1), default=defaults["epochs"])
    parser.add_argument("--patches-per-case", type=at_least(1), default=defaults["patches_per_case"])
    parser.add_argument("--patch-size", type=patch_size, default=defaults["patch_size"])
    parser.add_argument("--batch-size", type=at_least(1), default=defaults["batch_size"])
    parser.add_argument("--lr", type=positive_float, default=defaults["learning_rate"])
    parser.add_argument("--seed", type=at_least(0), default=defaults["seed"])
    parser.add_argument("--no-cache", action="store_true",
                        help="run the frozen layers at every step instead of caching their features")
    add_device_argument(parser)
    add_progress_argument(parser)


def run(args: argparse.Namespace) -> int:
    check_outputs([check_suffix(args.out, MODEL_SUFFIX)], [args.model])
    cases = load_cases(args.cases)
    tune_layers, reason = resolve_tune_layers(args.tune_layers, len(cases))
    if args.tune_layers == "auto":
        print(f"--tune-layers auto: {reason}")
    config = AdaptConfig.from_dict(dict(epochs=args.epochs, patches_per_case=args.patches_per_case,
                                        patch_size=args.patch_size, batch_size=args.batch_size,
                                        learning_rate=args.lr, seed=args.seed))
    result = adapt(args.model, cases, args.out, tune_layers, args.device, config,
                   progress=progress_printer(args), cache=False if args.no_cache else None)
    training = result.metadata["training"]
    print(f"adapted model: {result.path} (N={len(cases)}, tuned the last {tune_layers} layers, "
          f"held-out slice Dice {training['best_val_dice']:.3f}, threshold "
          f"{result.metadata['threshold']:.2f}, {training['seconds']:.0f} s, "
          f"features {'cached' if training['cached_features'] else 'not cached'})")
    return 0
