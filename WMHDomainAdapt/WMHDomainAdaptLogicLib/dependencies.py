"""Which Python packages the worker needs and which are missing, checked without importing them.

Importing torch just to find out whether it exists would cost seconds at module load and could
crash on a broken CUDA install; package metadata answers the question instantly. Installation
itself happens only when the user acts (in the module file, through the PyTorch extension).
"""

from __future__ import annotations

import importlib.metadata
import re

# Import name -> distribution name. numpy and SimpleITK ship with Slicer and must not be replaced.
REQUIRED = {"torch": "torch", "safetensors": "safetensors"}
TORCH_REQUIREMENT = ">=2.1"


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_packages() -> list[str]:
    """Distribution names of required packages that are not installed."""
    return [dist for dist in REQUIRED.values() if installed_version(dist) is None]


def _release(version: str) -> tuple[int, ...]:
    """(2, 1, 0) from "2.1.0+cu121" or "2.1.0a0": the numeric release, which is all we compare."""
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def torch_problem(installed: str | None = None) -> str | None:
    """Why the installed torch cannot run the worker, with the fix; None when it can (or is absent)."""
    installed = installed if installed is not None else installed_version("torch")
    if installed is None:
        return None
    minimum = TORCH_REQUIREMENT.lstrip(">=")
    if _release(installed) >= _release(minimum):
        return None
    return (f"PyTorch {installed} is installed, but this module needs PyTorch {minimum} or newer. In "
            f"Slicer's Python console run: slicer.util.pip_install('torch{TORCH_REQUIREMENT}') (or "
            f"uninstall it in the PyTorch Utils module and press Segment again), then restart Slicer.")
