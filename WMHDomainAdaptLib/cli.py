"""The `wmhda` command line: one sub-command per module in `WMHDomainAdaptLib.commands`.

Each command module defines `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`.
User errors (`InputError`) print one line and exit 2; a cancel (Ctrl-C) exits 130 after the
command has kept its last good state.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import Cancelled, InputError

COMMAND_MODULES = ("synth", "evaluate", "train", "segment", "adapt", "experiment", "bench", "demo")


def _load_commands():
    for name in COMMAND_MODULES:
        try:
            yield importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}.commands.{name}":
                raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wmhda", description="WMH segmentation on T1 + FLAIR and few-shot protocol adaptation.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _load_commands():
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except InputError as error:
        print(f"wmhda {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print(f"\nwmhda {args.command}: cancelled; the last good state was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
