#!/usr/bin/env bash
# Create .venv (if needed) and install WMHDomainAdapt with the given extras, e.g. `synth,plots`.
# torch is pinned to 2.13.0 first: on this workplace's machines pip takes the local CPU build
# instead of downloading a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-synth,plots}"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[${extras}]"
# deepbet (brain extraction on heads) without the GUI packages it declares; its version is pinned
# and its networks' SHA-256 are checked before they load (WMHDomainAdaptLib/brain_extraction.py)
if [[ ",${extras}," == *",heads,"* ]]; then
  .venv/bin/python -m pip install -q --no-deps "deepbet==1.0.2"
fi
