"""The cohort summary of per-case scores: what ``metrics.json`` holds and ``dvc exp show`` compares."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bratseg.labels import REGIONS

#: The per-region metrics summarised (columns ``<metric>_<region>`` of the per-case table).
METRICS = ("dice", "iou", "hd95", "sensitivity", "specificity")


def summarise(cases: pd.DataFrame) -> dict[str, Any]:
    """``metrics.json``: mean and median over cases per metric and region (NaN values left out)."""
    out: dict[str, Any] = {"n_cases": len(cases)}
    for metric in METRICS:
        out[metric] = {}
        for region in REGIONS:
            values = cases[f"{metric}_{region}"].to_numpy(dtype=float)
            finite = values[~np.isnan(values)]
            out[metric][region] = {
                "mean": round(float(finite.mean()), 6) if finite.size else None,
                "median": round(float(np.median(finite)), 6) if finite.size else None,
            }
    mean_dice = [out["dice"][r]["mean"] for r in REGIONS]
    out["dice"]["mean"] = round(float(np.mean(mean_dice)), 6) if None not in mean_dice else None
    return out
