"""Every score of one case, as the BraTS challenges report them: whole-mask metrics and lesion-wise ones.

One call per case for the evaluate stage and ``bratseg evaluate`` alike: the whole-mask metrics of
:func:`bratseg.evaluation.metrics.case_metrics` (Dice, IoU, HD95, sensitivity, specificity, volumes) and the
lesion-wise scores and NSD of :func:`bratseg.evaluation.lesionwise_case.case_lesionwise`, for every evaluated
region of the label set (the lesion-wise ones for the regions of the ``metrics.lesionwise`` preset).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from bratseg.config import MetricsParams
from bratseg.evaluation.lesionwise_case import case_lesionwise
from bratseg.evaluation.metrics import case_metrics
from bratseg.labels import LabelSet


def score_case(
    pred_classes: npt.ArrayLike,
    ref_classes: npt.ArrayLike,
    spacing: Sequence[float],
    params: MetricsParams,
    labels: LabelSet,
) -> dict[str, dict[str, float]]:
    """``{region: {metric: value}}`` for every evaluated region of ``labels``, in their order."""
    scores = case_metrics(pred_classes, ref_classes, spacing, params, labels)
    for region, values in case_lesionwise(pred_classes, ref_classes, spacing, params, labels).items():
        scores[region].update(values)
    return scores


def flat_row(case_id: str, scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    """One per-case table row: ``case_id``, ``<metric>_<region>`` columns and ``dice_mean``."""
    row: dict[str, Any] = {"case_id": case_id}
    for region, values in scores.items():
        for key, value in values.items():
            row[f"{key}_{region}"] = value
    row["dice_mean"] = float(np.nanmean([values["dice"] for values in scores.values()]))
    return row
