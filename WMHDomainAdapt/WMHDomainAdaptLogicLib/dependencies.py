"""Which Python packages the worker needs and which are missing, checked without importing them.

Importing torch just to find out whether it exists would cost seconds at module load and could
crash on a broken CUDA install; package metadata answers the question instantly. Installation
itself happens only when the user acts (in the module file, through the PyTorch extension).
"""

from __future__ import annotations

import importlib.metadata

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
