"""The Slicer GUI process never imports torch: only the worker process may (issue: GUI freezes,
a broken CUDA install taking Slicer down)."""

import subprocess
import sys

import pytest
from conftest import MODULE_DIR

pytest.importorskip("slicer")

PROBE = """
import sys
sys.path.insert(0, {module_dir!r})
import WMHDomainAdaptLogicLib.controller, WMHDomainAdaptLogicLib.registry, WMHDomainAdaptLogicLib.statistics
print("torch" in sys.modules)
"""


def test_the_module_logic_the_gui_imports_loads_no_torch():
    done = subprocess.run([sys.executable, "-c", PROBE.format(module_dir=str(MODULE_DIR))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
