"""Errors a user can act on.

Every problem with user input is raised as an `InputError` whose message names the file (or the
setting) and the problem in one line, so the command line and the Slicer module can show it as
is instead of a traceback from deep inside SimpleITK or torch.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input: a file that is missing, unreadable, of the wrong shape or content."""

    def __init__(self, source: str | Path | None, problem: str):
        self.source = str(source) if source is not None else None
        self.problem = problem
        super().__init__(f"{self.source}: {problem}" if self.source else problem)


class Cancelled(RuntimeError):
    """Raised inside long work when the user asked to stop; the caller keeps the last good state."""


class InputWarning(UserWarning):
    """Input that runs but may give a wrong result (say a T1 covering only part of the FLAIR).

    `wmhda` prints it as one line, `warning: <file>: <problem>`, which the Slicer module shows too.
    """

    def __init__(self, source: str | Path | None, problem: str):
        super().__init__(f"{source}: {problem}" if source else problem)
