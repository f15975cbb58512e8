#!/usr/bin/env bash
# The Pythons that Slicer ships: 3.9 (Slicer 5.8) and 3.12 (Slicer 5.10).
#
# 1. A static check (vermin) that the library, the module, the tests and the scripts use nothing
#    newer than Python 3.9; it fails the build on, say, `zip(..., strict=True)`.
# 2. The torch-free tests under each of those Pythons, in a venv of its own (.venv-py3.9,
#    .venv-py3.12): I/O, metrics, datasets, evaluate, N4, preprocessing, the per-scan threshold,
#    the synthetic benchmark, the worker's command lines and process control, and, where a
#    slicer-core wheel exists for that Python (3.12; none is published for 3.9), the module's
#    logic on real MRML. torch is not installed there: its wheels for those Pythons are CUDA builds
#    of several GB, too large for CI. The torch tests run in the main job (.venv, Python 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."

.venv/bin/vermin -q -t=3.9- --violations --no-tips --eval-annotations \
  WMHDomainAdaptLib WMHDomainAdapt Testing scripts
echo "vermin: nothing newer than Python 3.9"

TORCH_FREE=(test_dataset.py test_evaluate_cli.py test_io.py test_metrics.py test_n4.py test_preprocess.py
            test_scan_threshold.py test_synth.py test_slicer_module_files.py test_slicer_worker.py)
MRML=(test_slicer_adaptation_set.py test_slicer_volumes.py test_slicer_gui_imports.py)
PACKAGES=(numpy SimpleITK safetensors scipy nilearn pytest psutil)
MRML_PACKAGES=("slicer-core==5.13.31053.0" "vtk==9.6.2" "slicerio>=1.0")

find_python() {  # pyenv's interpreter for version $1, else pythonX.Y on PATH
  local candidate="${PYENV_ROOT:-$HOME/.pyenv}/versions/$1/bin/python3"
  if [ -x "$candidate" ]; then echo "$candidate"; return; fi
  command -v "python${1%.*}" || { echo "Python $1 not found (pyenv install $1)" >&2; return 1; }
}

for version in 3.9.18 3.12.1; do
  minor="${version%.*}"
  venv=".venv-py${minor}"
  python="$(find_python "$version")"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  tests=("${TORCH_FREE[@]}")
  packages=("${PACKAGES[@]}")
  if [ "$minor" != "3.9" ]; then
    tests+=("${MRML[@]}")
    packages+=("${MRML_PACKAGES[@]}")
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${packages[@]}"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'): torch-free tests"
  (cd Testing/Python && "../../$venv/bin/python" -m pytest -p no:cacheprovider "${tests[@]}" "$@")
done
