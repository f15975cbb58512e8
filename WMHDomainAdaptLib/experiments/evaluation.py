"""Scoring one run: whole-volume predictions on every test case, all WMH-challenge metrics.

Each case is thresholded at the run's own chosen threshold (what a user of that model would get).
The run's summary carries mean, median and pooled Dice: with few test cases one tiny lesion load
can move the mean a lot, and the pooled Dice is the stabler of the three.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..cases import PreparedCase
from ..decision import Cut, decide
from ..inference import predict_probability
from ..metrics import evaluate_arrays, summarize
from ..network_input import InputSpec
from ..progress import CancelToken

FlairOf = Callable[[np.ndarray], np.ndarray]  # a prepared case's channels -> its normalized FLAIR
CASE_METRICS = ("dsc", "hd95", "avd", "recall", "precision", "f1", "ref_ml", "pred_ml", "overlap_ml")


def evaluate_cases(network: torch.nn.Module, spec: InputSpec, cut: Cut, cases: list[PreparedCase],
                   device: torch.device, flair_of: FlairOf, cancel: CancelToken | None = None) -> list[dict]:
    """Per-case metrics of a network whose probabilities are cut by `cut` (a fixed threshold, or a
    calibrated model's per-scan rule), as `segment` would cut them."""
    rows = []
    for case in cases:
        if cancel is not None:
            cancel.check()
        probability = predict_probability(network, spec, case, device)
        mask = decide(probability, flair_of(case.image), cut, case.spacing_xyz).mask
        metrics = evaluate_arrays(mask, case.label, case.spacing_xyz, case.case_id)
        rows.append({"case_id": case.case_id, **{name: metrics[name] for name in CASE_METRICS}})
    return rows


def summary_figures(case_rows: list[dict]) -> dict[str, float]:
    """The run-level columns of the results table."""
    summary = summarize(case_rows)
    dice = [row["dsc"] for row in case_rows]
    figures = {"dsc_mean": summary["dsc"]["mean"], "dsc_median": summary["dsc"]["median"],
               "dsc_pooled": summary["pooled_dsc"]["mean"],
               "dsc_sd": float(np.std(dice, ddof=1)) if len(dice) > 1 else math.nan}
    for name in ("hd95", "avd", "recall", "precision", "f1"):
        figures[f"{name}_mean"] = summary[name]["mean"]
        figures[f"{name}_median"] = summary[name]["median"]
    figures["hd95_count"] = summary["hd95"]["count"]  # cases where HD95 is defined
    return figures
