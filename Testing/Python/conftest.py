"""Shared fixtures: `device` runs a test on the CPU and, where one exists, on a CUDA GPU.

CI has no GPU, so its CUDA variants are skipped there; on a GPU machine
`pytest -k cuda` runs just them. torch is optional here so that the torch-free tests also run
under the Pythons that Slicer ships (3.9 in Slicer 5.8), where no torch is installed.
"""

import sys
from pathlib import Path

import pytest

try:
    import torch
except ImportError:  # the torch-free jobs on Slicer's own Pythons (scripts/test_slicer_pythons.sh)
    torch = None

# The Slicer module's Qt-free libraries and its batch script, importable as Slicer imports them.
MODULE_DIR = Path(__file__).resolve().parents[2] / "WMHDomainAdapt"
for path in (str(MODULE_DIR), str(MODULE_DIR / "Scripts")):
    if path not in sys.path:
        sys.path.insert(0, path)

NEEDS_CUDA = pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=NEEDS_CUDA)])
def device(request) -> str:
    return request.param
