"""Arguments and output shared by the sub-commands."""

from __future__ import annotations

import argparse
import math
import sys

from ..errors import InputError
from ..progress import ProgressEvent, print_bar


def _number(text: str, kind: type):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got '{text}'") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got '{text}'")
    return value


def at_least(minimum: float, kind: type = int):
    """An argparse type: a `kind` number of at least `minimum` (say 1 for --epochs)."""
    def parse(text: str):
        value = _number(text, kind)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value
    parse.__name__ = f"{kind.__name__} >= {minimum}"
    return parse


def positive_float(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def unit_interval(low_open: bool = True, high_open: bool = False):
    """An argparse type: a number in (0, 1], [0, 1) or the like."""
    def parse(text: str) -> float:
        value = _number(text, float)
        below = value <= 0 if low_open else value < 0
        above = value >= 1 if high_open else value > 1
        if below or above:
            interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must lie in {interval}, got {text}")
        return value
    parse.__name__ = "fraction"
    return parse


def patch_size(text: str) -> int:
    """Training patches: even (the network halves and doubles the resolution) and at least 8."""
    value = _number(text, int)
    if value < 8 or value % 2:
        raise argparse.ArgumentTypeError(f"must be an even number of at least 8, got {text}")
    return value


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--threads", type=at_least(1), default=None,
                        help="CPU threads for torch (default: torch's choice); 1 is much faster when "
                             "other jobs share the cores")


def apply_threads(args: argparse.Namespace) -> None:
    """Honour --threads; torch's default of one thread per core collapses on busy cores."""
    threads = getattr(args, "threads", None)
    if threads is None:
        return
    if threads < 1:
        raise InputError("--threads", f"must be at least 1, got {threads}")
    import torch
    torch.set_num_threads(threads)


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress-lines", action="store_true",
                        help="print machine-readable PROGRESS lines on stdout instead of a bar "
                             "(used by the Slicer module's worker)")


def progress_printer(args: argparse.Namespace):
    """A callback printing a terminal bar, or PROGRESS lines with --progress-lines."""
    if getattr(args, "progress_lines", False):
        def print_line(event: ProgressEvent) -> None:
            print(event.as_line(), flush=True)
        return print_line
    return print_bar if sys.stderr.isatty() or getattr(args, "verbose", False) else _quiet_bar


def _quiet_bar(event: ProgressEvent) -> None:
    """When stderr is not a terminal, print only task ends and every tenth of the way."""
    step = max(1, event.total // 10)
    if event.done == event.total or event.done % step == 0:
        figures = " ".join(f"{k}={v:.4g}" for k, v in event.figures.items())
        eta = f" ETA {event.eta_seconds:.0f}s" if event.eta_seconds is not None else ""
        print(f"{event.task}: {event.done}/{event.total} ({100 * event.fraction:.0f}%){eta} {figures}",
              file=sys.stderr, flush=True)
