"""The `wmhda` command line: one sub-command per module in `WMHDomainAdaptLib.commands`.

Each command module defines `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`.
User errors (`InputError`) print one line and exit 2; a cancel (Ctrl-C) exits 130 after the
command has kept its last good state.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from . import __version__
from .commands._common import apply_threads
from .errors import Cancelled, InputError, InputWarning

COMMAND_MODULES = ("synth", "evaluate", "train", "calibrate", "segment", "adapt", "experiment", "bench",
                   "demo", "devices")


def _import(name: str):
    return importlib.import_module(f".commands.{name}", __package__)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (`wmhda train: error: argument --epochs: ...`), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings (InputWarning) as one line on stderr; others as Python prints them."""
    if issubclass(category, InputWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that sub-command is imported (fast start, fewer dependencies).

    Command modules may need optional extras (matplotlib for `experiment`); a command whose import
    fails is still listed, with the reason, so the others keep working (e.g. in Slicer's Python).
    """
    parser = OneLineParser(
        prog="wmhda", description="WMH segmentation on T1 + FLAIR and few-shot protocol adaptation.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       parser_class=OneLineParser)
    for name in COMMAND_MODULES:
        if only is not None and name != only:
            continue
        try:
            module = _import(name)
        except ImportError as error:
            if only is not None:
                raise
            subparsers.add_parser(name, help=f"(unavailable here: {error})")
            continue
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((word for word in argv if not word.startswith("-")), None)
    args = build_parser(command if command in COMMAND_MODULES else None).parse_args(argv)
    warnings.showwarning = _warning_line
    try:
        apply_threads(args)
        return int(args.run(args) or 0)
    except InputError as error:
        print(f"wmhda {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file the user named: unwritable folder, full disk, read-only filesystem
        where = f"{error.filename}: " if error.filename else ""
        print(f"wmhda {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print(f"\nwmhda {args.command}: cancelled; the last good state was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
