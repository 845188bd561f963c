"""The ``crossval`` stage: the post-processing chosen on the out-of-fold predictions, and their scores per
fold and pooled.

1. The out-of-fold predictions of every fold (stages ``cv_predict@<fold>``), each case predicted by the one
   model that did not train on it.
2. With ``postprocess.select`` the post-processing is chosen on them
   (:mod:`bratseg.evaluation.postprocess_selection`), judged by Dice on the model's grid against the cached
   labels (as the training's validation: fast, memory-mapped); otherwise the params fix it.
3. Every case is post-processed with the chosen plan, written back onto its native grid and scored there
   like the test split (all metrics, lesion-wise too), and scored without the selected steps as well (Dice),
   for the before / after figures.

Outputs: the plan beside the models (``models/postprocessing.json``), the per-case table (``cases.csv``, with
a ``fold`` column) and ``metrics.json`` (DVC metrics): ``folds`` (per region the mean and standard deviation
over the folds of each fold's mean: ``dvc exp show`` columns), ``per_fold``, ``pooled`` (the summary over all
out-of-fold cases, as the evaluate stage's) and ``postprocessing`` (the choice, Dice before and after).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from bratseg.cache import CachedCase, PreprocessedCohort
from bratseg.config import Params, PostprocessParams
from bratseg.errors import BratsegError, ConfigError
from bratseg.evaluation.metrics import dice
from bratseg.evaluation.postprocess_selection import (
    Choice,
    Scorer,
    Selection,
    mean_dice,
    select_postprocessing,
)
from bratseg.evaluation.scoring import flat_row, score_case
from bratseg.evaluation.summary import summarise
from bratseg.inference.postprocess import PostprocessPlan, postprocess
from bratseg.inference.predict import restore_original
from bratseg.io import atomic_path, save_json
from bratseg.labels import LabelSet
from bratseg.pipeline.cv_predict import SUFFIX, load_classes, read_index
from bratseg.pipeline.folds import out_of_fold
from bratseg.pipeline.postprocessing import write_plan
from bratseg.pipeline.runs import attach_experiment, flat_metrics, read_run
from bratseg.rawcase import reference_classes
from bratseg.tracking import Tracker, TrackingContext

log = logging.getLogger(__name__)

#: Metrics summarised over the folds (mean and standard deviation of the fold means), when scored.
FOLD_METRICS: tuple[str, ...] = ("dice", "hd95", "lesion_dice", "lesion_hd95")
CRITERION = (
    "mean over the regions of the mean Dice over the out-of-fold cases, on the model grid (cached labels)"
)


@dataclass(frozen=True)
class OutOfFold:
    """One out-of-fold case: its fold, the cached case and its prediction file."""

    fold: str
    case: CachedCase
    prediction: Path


def out_of_fold_cases(
    params: Params, cohort: PreprocessedCohort, cv_dir: Path
) -> tuple[list[OutOfFold], dict[str, str]]:
    """Every fold's held-out cases, in fold order, and each fold's checkpoint digest."""
    entries: list[OutOfFold] = []
    digests: dict[str, str] = {}
    split = json.loads(cohort.split.read_text())
    for fold in params.cv.fold_names:
        cases = out_of_fold(split, params.cv, fold)
        index = read_index(cv_dir / fold, fold, cases)
        digests[fold] = str(index["model_sha256"])
        for case_id in cases:
            entries.append(OutOfFold(fold, cohort.case(case_id), cv_dir / fold / f"{case_id}{SUFFIX}"))
    return entries, digests


def plan_of(post: PostprocessParams, choice: Choice) -> PostprocessPlan:
    """The plan of a choice, with the fixed parts (threshold, small and coreless components) of ``post``."""
    fixed = PostprocessPlan.from_params(post)
    return replace(fixed, largest_component=choice.largest_component, et_min_voxels=choice.et_min_voxels)


def region_dice(classes: npt.ArrayLike, ref: npt.ArrayLike, labels: LabelSet, empty: str) -> list[float]:
    """Dice of each evaluated region of ``labels``."""
    pred, truth = labels.region_masks(np.asarray(classes)), labels.region_masks(np.asarray(ref))
    return [dice(pred[i], truth[i], empty=empty) for i in range(len(labels.region_names))]


def model_grid_scorer(entries: Sequence[OutOfFold], params: Params, labels: LabelSet) -> Scorer:
    """Choice -> Dice ``(n_cases, n_regions)`` on the model grid (predictions read again on each call)."""

    def score(choice: Choice) -> npt.NDArray[np.float64]:
        plan = plan_of(params.postprocess, choice)
        rows = []
        for entry in entries:
            classes, _ = postprocess(load_classes(entry.prediction), plan, labels)
            label = entry.case.label()
            assert label is not None  # cv_predict checked it
            rows.append(region_dice(classes, label, labels, params.metrics.empty))
        return np.asarray(rows, dtype=np.float64).reshape(len(entries), len(labels.region_names))

    return score


def choose_plan(
    entries: Sequence[OutOfFold], params: Params, labels: LabelSet
) -> tuple[PostprocessPlan, Selection | None]:
    """The plan to apply: selected on ``entries`` (``postprocess.select``), else the one the params fix.

    Raises:
        ConfigError: ``postprocess.largest_component`` names a region the label set lacks.
    """
    post = params.postprocess
    if not post.select:
        unknown = [r for r in post.largest_component if r not in labels.region_names]
        if unknown:
            raise ConfigError(
                f"params.yaml: postprocess.largest_component: {', '.join(unknown)} not among the regions of "
                f"label set {labels.name} ({', '.join(labels.region_names)})"
            )
        return PostprocessPlan.from_params(post), None
    if not entries:
        if params.cv.folds > 1:
            log.warning(
                "no out-of-fold case to choose the post-processing on: the params' fixed plan is used"
            )
        else:
            log.info("cv.folds = 1: no out-of-fold predictions; the post-processing params postprocess fixes")
        return PostprocessPlan.from_params(post), None
    scorer = model_grid_scorer(entries, params, labels)
    candidates = post.et_min_voxels_candidates
    selection = select_postprocessing(scorer, labels.region_names, candidates, len(entries))
    return plan_of(post, selection.choice), selection


def score_out_of_fold(
    entries: Sequence[OutOfFold], plan: PostprocessPlan, params: Params, labels: LabelSet
) -> tuple[pd.DataFrame, npt.NDArray[np.float64]]:
    """Every case scored on its native grid with ``plan`` (one row each, ``fold`` first after ``case_id``),
    and the Dice ``(n_cases, n_regions)`` of the same predictions without the selectable steps."""
    baseline = replace(plan, largest_component=(), et_min_voxels=0)
    rows, before = [], []
    for entry in entries:
        raw, props = load_classes(entry.prediction), entry.case.properties
        ref = reference_classes(props)
        final, info = postprocess(raw, plan, labels)
        classes, geometry = restore_original(final.astype(np.uint8), props)
        if ref.shape != classes.shape:
            raise BratsegError(
                f"{entry.case.case_id}: prediction shape {classes.shape} != reference {ref.shape}"
            )
        row = flat_row(entry.case.case_id, score_case(classes, ref, geometry.spacing, params.metrics, labels))
        row = {"case_id": row.pop("case_id"), "fold": entry.fold, **row}
        row.update({f"post_{k}": v for k, v in info.items()})
        rows.append(row)
        plain, _ = restore_original(postprocess(raw, baseline, labels)[0].astype(np.uint8), props)
        before.append(region_dice(plain, ref, labels, params.metrics.empty))
    table = np.asarray(before, dtype=np.float64).reshape(len(entries), len(labels.region_names))
    return pd.DataFrame(rows), table


def _stat(values: Sequence[float | None]) -> dict[str, float | None]:
    finite = np.array([v for v in values if v is not None and not np.isnan(v)], dtype=np.float64)
    if not finite.size:
        return {"mean": None, "std": None}
    return {"mean": round(float(finite.mean()), 6), "std": round(float(finite.std()), 6)}


def fold_statistics(frame: pd.DataFrame, folds: Sequence[str], regions: Sequence[str]) -> dict[str, Any]:
    """``(over_folds, per_fold)``: per metric and region the mean and (population) standard deviation over the
    folds of each fold's mean, and each fold's means (``n_cases``, then metric -> region -> mean)."""
    metrics = [m for m in FOLD_METRICS if all(f"{m}_{r}" in frame.columns for r in regions)]
    per_fold: dict[str, Any] = {}
    for fold in folds:
        rows = frame[frame["fold"] == fold] if len(frame) else frame
        summary = summarise(rows, regions) if len(rows) else {}
        per_fold[fold] = {"n_cases": len(rows)}
        for metric in metrics:
            means = {r: (summary.get(metric) or {}).get(r, {}).get("mean") for r in regions}
            if metric == "dice":
                means["mean"] = (summary.get("dice") or {}).get("mean")
            per_fold[fold][metric] = means
    over: dict[str, Any] = {}
    for metric in metrics:
        keys = [*regions, "mean"] if metric == "dice" else list(regions)
        over[metric] = {k: _stat([per_fold[f][metric][k] for f in folds]) for k in keys}
    return {"over_folds": over, "per_fold": per_fold}


def _log(
    tracking: TrackingContext,
    models_dir: Path,
    folds: Sequence[str],
    metrics: dict[str, Any],
    files: Sequence[Path],
) -> None:
    """The metrics and files to the experiment's run; with several folds each fold's means to its own run."""
    tracker = attach_experiment(tracking, models_dir / folds[0] / "run.json", "crossval")
    tracker.log_metrics(flat_metrics({k: metrics[k] for k in ("folds", "pooled", "postprocessing")}, "cv_"))
    for path in files:
        tracker.log_artifact(path, "crossval")
    tracker.finish()
    if len(folds) > 1:
        for fold in folds:
            child = Tracker.attach(tracking, read_run(models_dir / fold / "run.json")["run_id"])
            if child is not None:
                child.log_metrics(flat_metrics(metrics["per_fold"][fold], "cv_"))
                child.finish()


def run_crossval(
    params: Params,
    cohort: PreprocessedCohort,
    cv_dir: Path,
    models_dir: Path,
    outputs: tuple[Path, Path, Path],
    tracking: TrackingContext,
) -> dict[str, Any]:
    """The whole stage. ``outputs``: the plan file (``models/postprocessing.json``), ``cases.csv`` and
    ``metrics.json``. Returns the metrics."""
    plan_file, cases_csv, metrics_json = outputs
    labels, regions = cohort.labels(), cohort.labels().region_names
    entries, digests = out_of_fold_cases(params, cohort, cv_dir)
    plan, selection = choose_plan(entries, params, labels)
    log.info("post-processing: %s (%s)", plan.describe(), "selected" if selection else "fixed by the params")
    frame, before_table = score_out_of_fold(entries, plan, params, labels)
    before, after = mean_dice(before_table, regions), summarise_dice(frame, regions)
    stats = fold_statistics(frame, params.cv.fold_names, regions)
    choice = {
        "largest_component": {r: r in plan.largest_component for r in regions},
        "et_min_voxels": plan.et_min_voxels,
        "selected": selection is not None,
    }
    metrics = {
        "n_folds": params.cv.folds,
        "n_cases": len(entries),
        "folds": stats["over_folds"],
        "per_fold": stats["per_fold"],
        "pooled": summarise(frame, regions) if len(frame) else {"n_cases": 0},
        "postprocessing": {**choice, "dice_before": before, "dice_after": after},
    }
    record = {
        "selected": selection is not None,
        "description": plan.describe(),
        "labels": labels.name,
        "folds": {fold: {"checkpoint": f"{fold}/best.pt", "sha256": digests[fold]} for fold in digests},
        "criterion": CRITERION,
        "selection": selection.to_dict() if selection is not None else None,
        "native_grid": {"n_cases": len(entries), "dice_before": before, "dice_after": after},
    }
    write_plan(plan_file, plan, record)
    with atomic_path(cases_csv) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    save_json(metrics_json, metrics)
    _log(tracking, models_dir, params.cv.fold_names, metrics, [plan_file, cases_csv, metrics_json])
    return metrics


def summarise_dice(frame: pd.DataFrame, regions: Sequence[str]) -> dict[str, float | None]:
    """Mean Dice per region and their mean of a per-case table (as :func:`mean_dice`)."""
    if not len(frame):
        return mean_dice(np.zeros((0, len(regions))), regions)
    return mean_dice(frame[[f"dice_{r}" for r in regions]].to_numpy(dtype=float), regions)
