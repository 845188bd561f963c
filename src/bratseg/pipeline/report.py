"""The ``report`` stage: load predictions and raw images, draw the figures, write the HTML page."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from bratseg.cache import PreprocessedCohort
from bratseg.config import Params
from bratseg.evaluation.figures import case_figure, metric_distribution_figure
from bratseg.evaluation.report import render_report, write_report
from bratseg.io import Geometry, atomic_path
from bratseg.labels import label_set
from bratseg.pipeline.postprocessing import read_plan_file
from bratseg.pipeline.runs import experiment_run_id
from bratseg.rawcase import read_images, read_segmentation, reference_classes
from bratseg.tracking import Tracker, TrackingContext

log = logging.getLogger(__name__)


def select_cases(cases: pd.DataFrame, n: int) -> list[str]:
    """The ``n`` worst and ``n`` best cases by mean Dice (worst first, each case once)."""
    order = cases.sort_values(["dice_mean", "case_id"])["case_id"].tolist()
    chosen = order[:n] + [c for c in order[::-1][:n] if c not in order[:n]]
    return chosen


def to_ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Reorder/flip the voxel axes so that i, j, k point right, anterior, superior (as the figures expect)."""
    ras = nib.orientations.axcodes2ornt("RAS")
    transform = nib.orientations.ornt_transform(nib.io_orientation(affine), ras)
    return np.ascontiguousarray(nib.orientations.apply_orientation(array, transform))


def _load_case_arrays(properties: dict[str, Any], prediction: Path) -> dict[str, Any]:
    """The raw modalities, reference and prediction of a case, reoriented to RAS for the figures."""
    case_id = properties["case_id"]
    geometry = Geometry.from_dict(properties["geometry"])
    affine = geometry.affine_array
    images = {m: to_ras(v, affine) for m, v in read_images(properties).items()}
    convention = label_set(properties["convention"])
    pred = to_ras(read_segmentation(case_id, prediction, convention, geometry), affine)
    ref = to_ras(reference_classes(properties), affine) if properties.get("has_label") else None
    ornt = nib.io_orientation(affine)
    spacing = tuple(float(geometry.spacing[int(axis)]) for axis in ornt[:, 0].argsort())
    return {"images": images, "reference": ref, "prediction": pred, "spacing": spacing}


def _postprocessing_info(params: Params, plan_file: Path | None) -> dict[str, str]:
    """The report's lines on the cross-validation and the post-processing it chose (none without a file)."""
    if plan_file is None:
        return {}
    plan, document = read_plan_file(plan_file)
    folds = params.cv.folds
    how = "selected on the out-of-fold predictions" if document.get("selected") else "params postprocess"
    lines = {
        "cross-validation": f"{folds} folds, the test split by their ensemble" if folds > 1 else "none",
        "post-processing": f"{plan.describe()} ({how})",
    }
    native = document.get("native_grid") or {}
    before, after = native.get("dice_before") or {}, native.get("dice_after") or {}
    if before.get("mean") is not None and after.get("mean") is not None:
        lines["out-of-fold mean Dice"] = f"{before['mean']:.4f} without, {after['mean']:.4f} with it"
    return lines


@dataclass(frozen=True)
class ReportInputs:
    """What the report is drawn from: the earlier stages' outputs."""

    cohort: PreprocessedCohort
    predictions: Path  # folder of <case_id>.nii.gz
    cases_csv: Path  # per-case scores (evaluate stage)
    metrics_json: Path  # summary (evaluate stage)
    curves_png: Path  # training curves (train stage); optional on disk
    run_file: Path  # run.json of the training's MLflow run (a fold's: the report goes to the folds' parent)
    plan_file: Path | None = None  # postprocessing.json (crossval stage): shown in the report


def run_report(
    params: Params, inputs: ReportInputs, html_out: Path, figures_dir: Path, tracking: TrackingContext
) -> Path:
    """Write ``html_out`` and ``figures_dir/*.png``; log them to the training's MLflow run."""
    cases = pd.read_csv(inputs.cases_csv)
    summary = json.loads(inputs.metrics_json.read_text())
    run = json.loads(inputs.run_file.read_text())
    fingerprint = json.loads(inputs.cohort.fingerprint.read_text())
    labels = inputs.cohort.labels()
    figures_dir.mkdir(parents=True, exist_ok=True)

    case_figures: dict[str, bytes] = {}
    for case_id in select_cases(cases, params.report.n_figures):
        props = inputs.cohort.case(case_id).properties
        arrays = _load_case_arrays(props, inputs.predictions / f"{case_id}.nii.gz")
        row = cases.set_index("case_id").loc[case_id]
        dice = "  ".join(f"{r} {row[f'dice_{r}']:.3f}" for r in labels.region_names if f"dice_{r}" in row)
        png = case_figure(
            arrays["images"],
            arrays["reference"],
            arrays["prediction"],
            arrays["spacing"],
            f"{case_id}: Dice {dice}",
            labels,
        )
        case_figures[case_id] = png
        with atomic_path(figures_dir / f"{case_id}.png") as tmp:
            tmp.write_bytes(png)
        log.info("figure for %s", case_id)
    distribution = metric_distribution_figure(cases)
    with atomic_path(figures_dir / "distribution.png") as tmp:
        tmp.write_bytes(distribution)
    curves = inputs.curves_png
    info = {
        "model": params.model,
        "MLflow run": run["run_id"],
        "MLflow experiment": run.get("experiment", ""),
        "git commit": run.get("git.commit", ""),
        "params hash (training run)": run.get("params.hash", ""),
        "label set": labels.name,
        "lesion-wise scoring": (
            f"{params.metrics.lesionwise.matching}, preset {params.metrics.lesionwise.preset}"
        ),
        "metrics.empty": params.metrics.empty,
        "metrics.empty_hd95_mm": str(params.metrics.empty_hd95_mm),
        "metrics.hd95": params.metrics.hd95,
        "metrics.hd95_units": params.metrics.hd95_units,
        **_postprocessing_info(params, inputs.plan_file),
    }
    html = render_report(
        summary,
        cases,
        case_figures=case_figures,
        distribution_png=distribution,
        curves_png=curves.read_bytes() if curves.exists() else None,
        info=info,
        fingerprint=fingerprint,
    )
    out = html_out
    write_report(out, html)
    tracker = Tracker.attach(tracking, experiment_run_id(run))
    if tracker is not None:
        tracker.log_artifact(out, "report")
        tracker.log_artifact(figures_dir / "distribution.png", "report")
        tracker.finish()
    log.info("report written to %s", out)
    return out
