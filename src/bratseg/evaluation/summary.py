"""The cohort summary of per-case scores: what ``metrics.json`` holds and ``dvc exp show`` compares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: The whole-mask metrics summarised (columns ``<metric>_<region>`` of the per-case table).
METRICS: tuple[str, ...] = ("dice", "iou", "hd95", "sensitivity", "specificity")
#: Lesion-wise and surface metrics, summarised when the per-case table has them.
LESION_METRICS: tuple[str, ...] = ("nsd", "lesion_dice", "lesion_hd95", "lesion_nsd", "tp", "fp", "fn", "f1")
ADULT_REGIONS: tuple[str, ...] = ("WT", "TC", "ET")


def regions_of(cases: pd.DataFrame) -> tuple[str, ...]:
    """The regions scored in a per-case table (columns ``dice_<region>``), in column order."""
    return tuple(c.removeprefix("dice_") for c in cases.columns if c.startswith("dice_") and c != "dice_mean")


def summarise(cases: pd.DataFrame, regions: Sequence[str] | None = None) -> dict[str, Any]:
    """``metrics.json``: mean and median over cases per metric and region (NaN values left out).

    Args:
        cases: one row per case, columns ``<metric>_<region>``.
        regions: the regions to summarise (default: every region the table scores).

    Returns:
        ``{"n_cases": n, metric: {region: {"mean", "median"}, ...}, ...}`` for the whole-mask metrics and
        every lesion-wise metric present for all regions; ``dice`` also holds ``mean``, the mean over regions.
    """
    regions = tuple(regions) if regions is not None else regions_of(cases)
    present = [m for m in LESION_METRICS if all(f"{m}_{r}" in cases.columns for r in regions)]
    out: dict[str, Any] = {"n_cases": len(cases)}
    for metric in (*METRICS, *present):
        out[metric] = {}
        for region in regions:
            values = cases[f"{metric}_{region}"].to_numpy(dtype=float)
            finite = values[~np.isnan(values)]
            out[metric][region] = {
                "mean": round(float(finite.mean()), 6) if finite.size else None,
                "median": round(float(np.median(finite)), 6) if finite.size else None,
            }
    mean_dice = [out["dice"][r]["mean"] for r in regions]
    out["dice"]["mean"] = round(float(np.mean(mean_dice)), 6) if None not in mean_dice else None
    return out
