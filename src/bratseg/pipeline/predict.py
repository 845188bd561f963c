"""Segment a new raw case with a trained model: the preprocessing recorded in the model, then inference.

The case is reoriented and resampled to the spacing the model was trained at (recorded in the model),
preprocessed like the training data, segmented, and written back on its exact native grid (shape, affine,
header) in its own label set.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bratseg.cache import open_case
from bratseg.config import InferenceParams, PostprocessParams, PreprocessParams
from bratseg.errors import ConfigError
from bratseg.inference.predict import TrainedModel, predict_cached_case, write_segmentation
from bratseg.labels import CANONICAL
from bratseg.layouts import CaseFiles
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
    model_path: Path,
    output: Path,
    inference: InferenceParams,
    post: PostprocessParams,
    device: str = "auto",
) -> dict[str, Any]:
    """Preprocess ``files`` as at training time, segment, and write ``output``; returns provenance.

    Raises:
        ConfigError: when the case's label set cannot write a class the model predicts (e.g. RC into a
            BraTS 2021 file): pass another ``--labels``.
    """
    model = TrainedModel.load(model_path, resolve_device(device))
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
        classes, geometry, info = predict_cached_case(model, case, inference, post)
    write_segmentation(output, classes, geometry, files.labels)
    return {**info, "spacing_mm": case.properties["spacing"], "labels": files.labels}
