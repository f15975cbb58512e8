"""How many layers to tune for N labelled scans: the paper's rule, grounded in our experiments.

Kept free of torch so the Slicer module can show the recommendation without loading PyTorch.
"""

from __future__ import annotations

from .errors import InputError

# Best number of tuned layers K by number of labelled target scans N (upper bounds of N).
# Provisional until the experiment grid (docs/results) measures it; see `recommended_tune_layers`.
TUNE_LAYERS_BY_SCANS = ((1, 2), (2, 3), (5, 5), (10, 8), (10**9, 15))


def recommended_tune_layers(n_cases: int) -> tuple[int, str]:
    """K for N scans: few scans tune only the last layers, more scans tune deeper (the paper)."""
    if n_cases < 1:
        raise InputError("--cases", "adaptation needs at least one labelled scan")
    for max_scans, layers in TUNE_LAYERS_BY_SCANS:
        if n_cases <= max_scans:
            return layers, (f"{n_cases} labelled scan(s): tune the last {layers} of the 15 layers "
                            f"(rule for N <= {max_scans}; few scans -> only the last layers)")
    raise AssertionError("unreachable")
