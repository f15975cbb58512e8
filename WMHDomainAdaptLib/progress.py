"""Progress reporting with an ETA, and cooperative cancellation.

Long work (training, adaptation, batch segmentation, synthesis) takes a `Progress` callback and a
`CancelToken`. The command line prints a one-line bar; the Slicer worker prints machine-readable
`PROGRESS ...` lines that the GUI parses; tests pass a list.append.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import Cancelled


@dataclass
class ProgressEvent:
    """One step of a long task: `done` of `total` units, plus free-form figures (loss, Dice)."""

    task: str
    done: int
    total: int
    eta_seconds: float | None = None
    figures: dict[str, float] = field(default_factory=dict)
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def as_line(self) -> str:
        """Machine-readable single line, parsed by the Slicer module's worker reader."""
        parts = [f"PROGRESS task={self.task}", f"done={self.done}", f"total={self.total}"]
        parts.append(f"percent={100.0 * self.fraction:.1f}")
        if self.eta_seconds is not None:
            parts.append(f"eta_s={self.eta_seconds:.1f}")
        parts += [f"{key}={value:.4g}" for key, value in self.figures.items()]
        if self.message:
            parts.append(f"msg={self.message!r}")
        return " ".join(parts)


ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """Thread-safe flag; long loops call `check()` between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


class ProgressTracker:
    """Turns step counts into `ProgressEvent`s with an ETA from the mean time per step so far."""

    def __init__(self, task: str, total: int, callback: ProgressCallback | None,
                 cancel: CancelToken | None = None):
        self.task, self.total, self.callback, self.cancel = task, total, callback, cancel
        self.started = time.monotonic()

    def update(self, done: int, message: str = "", **figures: float) -> None:
        if self.cancel is not None:
            self.cancel.check()
        if self.callback is None:
            return
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * (self.total - done) if done else None
        self.callback(ProgressEvent(self.task, done, self.total, eta, dict(figures), message))


def print_bar(event: ProgressEvent, stream=None) -> None:
    """A terminal progress bar: `[#####-----]  50% ETA 12s  loss=0.21`."""
    stream = stream or sys.stderr
    width = 24
    filled = int(round(width * event.fraction))
    eta = f" ETA {event.eta_seconds:.0f}s" if event.eta_seconds is not None else ""
    figures = "  ".join(f"{k}={v:.4g}" for k, v in event.figures.items())
    line = (f"\r{event.task:>10} [{'#' * filled}{'-' * (width - filled)}] "
            f"{100 * event.fraction:5.1f}% ({event.done}/{event.total}){eta}  {figures} {event.message}")
    stream.write(line[:160].ljust(100))
    if event.done >= event.total:
        stream.write("\n")
    stream.flush()
