"""The ``evaluate`` stage: predict the held-out cases, write them in original space, score them.

Scores are computed on the original grid against the segmentation file of the raw case, so the whole
round trip (crop, remap, uncrop, label convention) is part of what is measured.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from bratseg.cache import PreprocessedCohort
from bratseg.config import Params
from bratseg.errors import BratsegError
from bratseg.evaluation.scoring import flat_row, score_case
from bratseg.evaluation.summary import summarise
from bratseg.inference.predict import TrainedModel, predict_cached_case, write_segmentation
from bratseg.io import atomic_path, save_json
from bratseg.labels import LabelSet
from bratseg.rawcase import reference_classes
from bratseg.runtime import configure_determinism, resolve_device
from bratseg.tracking import Tracker, TrackingContext

log = logging.getLogger(__name__)
def evaluate_cases(
    params: Params, model: TrainedModel, cases: Sequence[Any], predictions_dir: Path, labels: LabelSet
) -> pd.DataFrame:
    """Predict, write (in each case's own label set) and score (the regions of ``labels``) each case; one
    row per case."""
    rows = []
    for case in tqdm(cases, desc="evaluate", unit="case", disable=None):
        t0 = time.perf_counter()
        classes, geometry, info = predict_cached_case(
            model, case, params.inference, params.postprocess, params.train.amp
        )
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


def run_evaluation(
    params: Params,
    cohort: PreprocessedCohort,
    model_file: Path,
    run_file: Path,
    predictions_dir: Path,
    cases_csv: Path,
    metrics_json: Path,
    tracking: TrackingContext,
) -> dict[str, Any]:
    """The whole stage: predictions in ``predictions_dir``, per-case scores in ``cases_csv``, the summary in
    ``metrics_json``; both are logged to the training's MLflow run named in ``run_file``."""
    configure_determinism(params.train.num_threads)
    device = resolve_device(params.train.device)
    cases = cohort.load_split()["test"]
    if not cases:
        raise BratsegError("split: the test split is empty (raise split.test_fraction or add cases)")
    model = TrainedModel.load(model_file, device)
    labels = cohort.labels()
    predictions_dir.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        frame = evaluate_cases(params, model, cases, predictions_dir, labels)
    with atomic_path(cases_csv) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    summary = summarise(frame, labels.region_names)
    save_json(metrics_json, summary)
    _track(summary, [cases_csv, metrics_json], run_file, tracking)
    return summary


def _track(summary: dict[str, Any], files: list[Path], run_file: Path, tracking: TrackingContext) -> None:
    """Add the test metrics and files to the training's MLflow run (a new run if the store lost it)."""
    run = json.loads(run_file.read_text())
    tracker = Tracker.attach(tracking, run["run_id"])
    if tracker is None:
        log.warning("MLflow run %s not found in the store; logging evaluation to a new run", run["run_id"])
        tracker = Tracker.create(
            tracking,
            run["experiment"],
            f"evaluation-{run['run_id'][:8]}",
            {"restored_from": run["run_id"], "trained_at.git.commit": run.get("git.commit", "")},
        )
    flat = {
        f"test_{metric}_{region}_{stat}": value
        for metric, per_region in summary.items()
        if isinstance(per_region, dict)
        for region, stats in per_region.items()
        if isinstance(stats, dict)
        for stat, value in stats.items()
        if value is not None and not math.isnan(value)
    }
    tracker.log_metrics(flat)
    for path in files:
        tracker.log_artifact(path, "evaluation")
    tracker.finish()
