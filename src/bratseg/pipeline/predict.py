"""Segment a new raw case with a trained model: the preprocessing recorded in the model, then inference."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bratseg.cache import open_case
from bratseg.config import InferenceParams, PostprocessParams, PreprocessParams
from bratseg.inference.predict import TrainedModel, predict_cached_case, write_segmentation
from bratseg.layouts import CaseFiles
from bratseg.preprocess.steps.chain import preprocess_case
from bratseg.runtime import resolve_device


def predict_case(
    files: CaseFiles,
    model_path: Path,
    output: Path,
    inference: InferenceParams,
    post: PostprocessParams,
    device: str = "auto",
) -> dict[str, Any]:
    """Preprocess ``files`` as at training time, segment, and write ``output``; returns provenance.

    The segmentation is written on the exact grid of the input and in its label convention.
    """
    model = TrainedModel.load(model_path, resolve_device(device))
    preprocess = PreprocessParams.from_dict(model.meta["preprocess"])
    with tempfile.TemporaryDirectory(prefix="bratseg-predict-") as tmp:
        work = Path(tmp)
        preprocess_case(files, work / files.case_id, preprocess, work_dir=work)
        case = open_case(work / files.case_id)
        classes, geometry, info = predict_cached_case(model, case, inference, post)
    write_segmentation(output, classes, geometry, files.convention.name)
    return info
