"""Segment a new raw case with a trained model or an ensemble (the folds of a cross-validation): the
preprocessing recorded in the model, then inference, then the post-processing chosen for the models.

The case is reoriented and resampled to the spacing the model was trained at (recorded in the model),
preprocessed like the training data, segmented (the folds' probabilities averaged), post-processed with the
``postprocessing.json`` beside the checkpoints (else params ``postprocess``), and written back on its exact
native grid (shape, affine, header) in its own label set.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bratseg.cache import open_case
from bratseg.config import InferenceParams, PostprocessParams, PreprocessParams
from bratseg.errors import ConfigError
from bratseg.inference.predict import Ensemble, predict_cached_case, write_segmentation
from bratseg.labels import CANONICAL
from bratseg.layouts import CaseFiles
from bratseg.pipeline.postprocessing import plan_for, resolve_models
from bratseg.preprocess.steps.chain import preprocess_case
from bratseg.preprocess.steps.ingest import IngestOptions, as_target
from bratseg.runtime import resolve_device


def ingest_options(meta: dict[str, Any]) -> IngestOptions:
    """How to bring a new case onto the grid the model was trained on (from the model's metadata)."""
    preprocess = meta["preprocess"]
    resample_to = meta.get("resample_to", "none")
    return IngestOptions(
        target_spacing=as_target(meta.get("target_spacing_mm")),
        image_order=int(preprocess.get("resample", {}).get("image_order", 3)),
        resample_to=None if resample_to == "none" else resample_to,
    )


def predict_case(
    files: CaseFiles,
    models: Sequence[Path] | Path,
    output: Path,
    inference: InferenceParams,
    post: PostprocessParams,
    device: str = "auto",
    plan_file: Path | None = None,
) -> dict[str, Any]:
    """Preprocess ``files`` as at training time, segment, and write ``output``; returns provenance.

    Args:
        models: checkpoints, or folders of them (:func:`~bratseg.pipeline.postprocessing.resolve_models`):
            several are an ensemble.
        post: the post-processing when no ``postprocessing.json`` lies beside the models (and no
            ``plan_file`` is given).

    Raises:
        ConfigError: when the case's label set cannot write a class the model predicts (e.g. RC into a
            BraTS 2021 file): pass another ``--labels``; a model or folder that does not exist.
    """
    checkpoints = resolve_models([models] if isinstance(models, Path) else list(models))
    plan, source = plan_for(checkpoints, post, plan_file)
    try:
        model = Ensemble.load(checkpoints, resolve_device(device))
    except ValueError as exc:
        raise ConfigError(f"predict: {exc}") from exc
    if not files.convention.can_write(model.labels.classes):
        missing = [CANONICAL[c] for c in model.labels.classes if not files.convention.can_write([c])]
        raise ConfigError(
            f"predict: the model predicts {', '.join(missing)}, which label set {files.labels} of "
            f"{files.case_id} cannot write: pass --labels with a set that has them"
        )
    preprocess = PreprocessParams.from_dict(model.meta["preprocess"])
    with tempfile.TemporaryDirectory(prefix="bratseg-predict-") as tmp:
        work = Path(tmp)
        preprocess_case(
            files, work / files.case_id, preprocess, options=ingest_options(model.meta), work_dir=work
        )
        case = open_case(work / files.case_id)
        classes, geometry, info = predict_cached_case(model, case, inference, plan)
    write_segmentation(output, classes, geometry, files.labels)
    return {
        **info,
        "spacing_mm": case.properties["spacing"],
        "labels": files.labels,
        "models": len(checkpoints),
        "postprocessing": plan.describe(),
        "postprocessing_from": source,
    }
