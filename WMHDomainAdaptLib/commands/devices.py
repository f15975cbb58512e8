"""`wmhda devices`: the torch devices this machine can run on (the Slicer module's device list)."""

from __future__ import annotations

import argparse
import json

NAME = "devices"
HELP = "list the devices --device can take here (each CUDA GPU by name, MPS, CPU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON line, as the Slicer module reads it")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..devices import available_devices

    devices = available_devices()
    if args.json:
        print(json.dumps(devices))
    else:
        print(f"torch {torch.__version__}")
        for device in devices:
            print(f"{device['key']:8s} {device['label']}")
    return 0
