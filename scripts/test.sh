#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, lint, tests (library, CLI, module logic on MRML),
# then the torch-free tests under the Pythons that Slicer ships (3.9 and 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "synth,plots,test,slicer,heads"
.venv/bin/ruff check .
.venv/bin/python -m pytest Testing/Python "$@"
bash scripts/test_slicer_pythons.sh "$@"
