"""How many layers to tune for N labelled scans: the paper's rule, grounded in our experiments.

Kept free of torch so the Slicer module can show the recommendation without loading PyTorch.
"""

from __future__ import annotations

from .errors import InputError

# Best number of tuned last layers K by number of labelled target scans N: (upper bound of N, K).
# Measured by `wmhda experiment --config small` on the synthetic benchmark with the shipped source
# model (docs/results/small): among K in {1, 3, 15} the best K was 3 at N = 1 and 2 (the last three
# layers) and 15 at N = 5 and 20 (all layers). N = 3 and 4 were not measured; they get the K of N = 5.
TUNE_LAYERS_BY_SCANS = ((2, 3), (10**9, 15))


def recommended_tune_layers(n_cases: int) -> tuple[int, str]:
    """K for N scans: few scans tune only the last layers, more scans tune deeper (the paper)."""
    if n_cases < 1:
        raise InputError("--cases", "adaptation needs at least one labelled scan")
    previous = 0
    for max_scans, layers in TUNE_LAYERS_BY_SCANS:
        if n_cases <= max_scans:
            bound = f"N <= {max_scans}" if max_scans < 10**9 else f"N > {previous}"
            return layers, (f"{n_cases} labelled scan(s): tune the last {layers} of the 15 layers "
                            f"(the best measured for {bound} in docs/results/small)")
        previous = max_scans
    raise AssertionError("unreachable")


DEPTH = 15  # the network's weight layers (re-exported as model.DEPTH; that module imports torch)


def resolve_tune_layers(requested: int | str, n_cases: int) -> tuple[int, str]:
    """K for a request of "auto" or a number, with the reason: the one place "auto" is resolved."""
    if requested == "auto":
        return recommended_tune_layers(n_cases)
    if isinstance(requested, str):
        try:
            requested = int(requested)
        except ValueError:
            raise InputError("--tune-layers",
                             f"must be auto or a number 1..{DEPTH}, got '{requested}'") from None
    if isinstance(requested, bool) or not isinstance(requested, int) or not 1 <= requested <= DEPTH:
        raise InputError("--tune-layers", f"must be auto or 1..{DEPTH}, got {requested}")
    return requested, f"tune the last {requested} of the {DEPTH} layers, as asked"
