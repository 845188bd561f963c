"""The ``report`` stage: load predictions and raw images, draw the figures, write the HTML page."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from bratseg.config import Params
from bratseg.evaluation.figures import case_figure, metric_distribution_figure
from bratseg.evaluation.report import render_report, write_report
from bratseg.io import Geometry, atomic_path
from bratseg.labels import CONVENTIONS
from bratseg.layouts import MODALITIES
from bratseg.preprocess.cache import open_case
from bratseg.preprocess.validate import read_modality, read_segmentation, reference_classes
from bratseg.training.tracking import Tracker

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
    sources = properties["sources"]
    images = {m: to_ras(read_modality(case_id, m, Path(sources[m]))[1], affine) for m in MODALITIES}
    convention = CONVENTIONS[properties["convention"]]
    pred = to_ras(read_segmentation(case_id, prediction, convention, geometry), affine)
    ref = to_ras(reference_classes(properties), affine) if properties.get("has_label") else None
    ornt = nib.io_orientation(affine)
    spacing = tuple(float(geometry.spacing[int(axis)]) for axis in ornt[:, 0].argsort())
    return {"images": images, "reference": ref, "prediction": pred, "spacing": spacing}


def run_report(
    params: Params, cache_dir: Path, predictions_dir: Path, reports_dir: Path, model_dir: Path
) -> Path:
    """Write ``reports_dir/report.html`` and ``reports_dir/figures/*.png``; log them to the MLflow run."""
    cases = pd.read_csv(reports_dir / "eval" / "cases.csv")
    summary = json.loads((reports_dir / "eval" / "metrics.json").read_text())
    run = json.loads((model_dir / "run.json").read_text())
    figures_dir = reports_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)

    case_figures: dict[str, bytes] = {}
    for case_id in select_cases(cases, params.report.n_figures):
        props = open_case(cache_dir / "cases" / case_id).properties
        arrays = _load_case_arrays(props, predictions_dir / f"{case_id}.nii.gz")
        row = cases.set_index("case_id").loc[case_id]
        title = f"{case_id}: Dice WT {row['dice_WT']:.3f}  TC {row['dice_TC']:.3f}  ET {row['dice_ET']:.3f}"
        png = case_figure(
            arrays["images"], arrays["reference"], arrays["prediction"], arrays["spacing"], title
        )
        case_figures[case_id] = png
        with atomic_path(figures_dir / f"{case_id}.png") as tmp:
            tmp.write_bytes(png)
        log.info("figure for %s", case_id)
    distribution = metric_distribution_figure(cases)
    with atomic_path(figures_dir / "distribution.png") as tmp:
        tmp.write_bytes(distribution)
    curves = reports_dir / "train" / "curves.png"
    info = {
        "model": params.model,
        "MLflow run": run["run_id"],
        "MLflow experiment": run.get("experiment", ""),
        "git commit": run.get("git.commit", ""),
        "params hash (training run)": run.get("params.hash", ""),
        "metrics.empty": params.metrics.empty,
        "metrics.empty_hd95_mm": str(params.metrics.empty_hd95_mm),
        "metrics.hd95": params.metrics.hd95,
    }
    html = render_report(
        summary,
        cases,
        case_figures=case_figures,
        distribution_png=distribution,
        curves_png=curves.read_bytes() if curves.exists() else None,
        info=info,
    )
    out = reports_dir / "report.html"
    write_report(out, html)
    tracker = Tracker.attach(run["run_id"])
    if tracker is not None:
        tracker.log_artifact(out, "report")
        tracker.log_artifact(figures_dir / "distribution.png", "report")
        tracker.finish()
    log.info("report written to %s", out)
    return out
