"""The ``evaluate`` stage: predict the held-out cases, write them in original space, score them.

The model is the ensemble of the folds' models (one with ``cv.folds = 1``), post-processed with the plan the
crossval stage chose (``models/postprocessing.json``). Scores are computed on the original grid against the
segmentation file of the raw case, so the whole round trip (crop, remap, uncrop, label convention) is part of
what is measured.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from bratseg.cache import PreprocessedCohort
from bratseg.config import Params
from bratseg.errors import BratsegError, ConfigError
from bratseg.evaluation.scoring import flat_row, score_case
from bratseg.evaluation.summary import summarise
from bratseg.inference.postprocess import PostprocessPlan
from bratseg.inference.predict import Ensemble, TrainedModel, predict_cached_case, write_segmentation
from bratseg.io import atomic_path, save_json
from bratseg.labels import LabelSet
from bratseg.pipeline.postprocessing import PLAN_FILE, fold_checkpoints, read_plan_file, sha256
from bratseg.pipeline.runs import attach_experiment, flat_metrics
from bratseg.rawcase import reference_classes
from bratseg.runtime import configure_determinism, resolve_device
from bratseg.tracking import TrackingContext

log = logging.getLogger(__name__)


def evaluate_cases(
    params: Params,
    model: TrainedModel | Ensemble,
    cases: Sequence[Any],
    predictions_dir: Path,
    labels: LabelSet,
    plan: PostprocessPlan | None = None,
) -> pd.DataFrame:
    """Predict, post-process with ``plan`` (default: the one params ``postprocess`` fixes), write (in each
    case's own label set) and score (the regions of ``labels``) each case; one row per case."""
    post = plan if plan is not None else PostprocessPlan.from_params(params.postprocess)
    rows = []
    for case in tqdm(cases, desc="evaluate", unit="case", disable=None):
        t0 = time.perf_counter()
        classes, geometry, info = predict_cached_case(model, case, params.inference, post, params.train.amp)
        write_segmentation(
            predictions_dir / f"{case.case_id}.nii.gz", classes, geometry, case.properties["convention"]
        )
        ref = reference_classes(case.properties)
        if ref.shape != classes.shape:
            raise BratsegError(f"{case.case_id}: prediction shape {classes.shape} != reference {ref.shape}")
        scores = score_case(classes, ref, geometry.spacing, params.metrics, labels)
        row = flat_row(case.case_id, scores)
        row.update({f"post_{k}": v for k, v in info.items()})
        rows.append(row)
        dice = " ".join(f"{r} {v['dice']:.3f}" for r, v in scores.items())
        log.info("%s: Dice %s (%.1f s)", case.case_id, dice, time.perf_counter() - t0)
    return pd.DataFrame(rows)


def pipeline_plan(models_dir: Path, checkpoints: Sequence[Path], folds: Sequence[str]) -> PostprocessPlan:
    """The plan of ``models_dir/postprocessing.json``, checked to be the one chosen for these checkpoints.

    Raises:
        ConfigError: the file is missing, or was chosen for other folds or other weights (run crossval).
    """
    path = models_dir / PLAN_FILE
    if not path.is_file():
        raise ConfigError(f"{path} not found: run the crossval stage (dvc repro)")
    plan, document = read_plan_file(path)
    chosen = {fold: entry.get("sha256") for fold, entry in document.get("folds", {}).items()}
    if chosen != {fold: sha256(c) for fold, c in zip(folds, checkpoints, strict=True)}:
        raise ConfigError(f"{path} was chosen for other models than {', '.join(folds)}: dvc repro crossval")
    return plan


def run_evaluation(
    params: Params,
    cohort: PreprocessedCohort,
    models_dir: Path,
    predictions_dir: Path,
    cases_csv: Path,
    metrics_json: Path,
    tracking: TrackingContext,
) -> dict[str, Any]:
    """The whole stage: predictions in ``predictions_dir``, per-case scores in ``cases_csv``, the summary in
    ``metrics_json``; both are logged to the experiment's MLflow run (the training's, or the folds' parent).

    ``models_dir`` holds one folder per fold of ``cv.fold_names`` (``best.pt``, ``run.json``) and the chosen
    post-processing (``postprocessing.json``)."""
    configure_determinism(params.train.num_threads)
    device = resolve_device(params.train.device)
    cases = cohort.load_split()["test"]
    if not cases:
        raise BratsegError("split: the test split is empty (raise split.test_fraction or add cases)")
    folds = params.cv.fold_names
    checkpoints = fold_checkpoints(models_dir, folds)
    plan = pipeline_plan(models_dir, checkpoints, folds)
    model = Ensemble.load(checkpoints, device)
    labels = cohort.labels()
    log.info("evaluating the ensemble of %s; post-processing: %s", ", ".join(folds), plan.describe())
    predictions_dir.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        frame = evaluate_cases(params, model, cases, predictions_dir, labels, plan)
    with atomic_path(cases_csv) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    summary = summarise(frame, labels.region_names)
    save_json(metrics_json, summary)
    tracker = attach_experiment(tracking, models_dir / folds[0] / "run.json", "evaluation")
    tracker.log_metrics(flat_metrics({k: v for k, v in summary.items() if isinstance(v, dict)}, "test_"))
    for path in (cases_csv, metrics_json):
        tracker.log_artifact(path, "evaluation")
    tracker.finish()
    return summary
