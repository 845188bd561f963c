"""The ``cv_predict@<fold>`` stage: the fold's model predicts the cases the fold held out (its out-of-fold
cases), before any post-processing but the probability threshold, on the model's grid.

``<out>/<case_id>.npy.gz`` holds each case's ``(X, Y, Z)`` uint8 canonical classes on its cached
(cropped) grid, gzip-compressed with no time stamp (equal predictions, equal bytes); ``<out>/index.json``
names the fold, its cases, the threshold and the checkpoint's digest. The crossval stage chooses the
post-processing on them.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from bratseg.cache import PreprocessedCohort
from bratseg.config import Params
from bratseg.errors import BratsegError, ConfigError
from bratseg.inference.predict import Ensemble
from bratseg.io import atomic_dir
from bratseg.pipeline.folds import out_of_fold
from bratseg.pipeline.postprocessing import sha256
from bratseg.runtime import configure_determinism, resolve_device

log = logging.getLogger(__name__)

INDEX = "index.json"
SUFFIX = ".npy.gz"


def save_classes(path: Path, classes: npt.NDArray[np.uint8]) -> None:
    """``classes`` as a gzip-compressed ``.npy`` without a time stamp (byte-stable)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(classes, dtype=np.uint8), allow_pickle=False)
    # (no file name in the header either: equal arrays, equal bytes)
    with open(path, "wb") as raw, gzip.GzipFile("", "wb", 6, fileobj=raw, mtime=0) as gz:
        gz.write(buffer.getvalue())


def load_classes(path: Path) -> npt.NDArray[np.uint8]:
    """The array of :func:`save_classes`."""
    with gzip.open(path, "rb") as gz:
        array: npt.NDArray[np.uint8] = np.load(io.BytesIO(gz.read()), allow_pickle=False)
    return array


def read_index(fold_dir: Path, fold: str, cases: tuple[str, ...]) -> dict[str, Any]:
    """The ``index.json`` of a fold's predictions, checked to be those of ``fold`` and ``cases``.

    Raises:
        ConfigError: missing, or written for another fold or other cases (rerun ``cv_predict@<fold>``).
    """
    path = Path(fold_dir) / INDEX
    if not path.is_file():
        raise ConfigError(f"{path} not found: run the stage cv_predict@{fold} (dvc repro)")
    index: dict[str, Any] = json.loads(path.read_text())
    if index.get("fold") != fold or tuple(index.get("cases", ())) != cases:
        raise ConfigError(f"{path}: not the predictions of fold {fold}'s cases: dvc repro cv_predict@{fold}")
    return index


def run_cv_predict(
    params: Params, cohort: PreprocessedCohort, model_file: Path, fold: str, out_dir: Path
) -> None:
    """The whole stage for one fold: ``out_dir`` written as a whole (the old one replaced only on success).

    With ``cv.folds = 1`` no case is predicted (and no model loaded): the index alone, naming the checkpoint.
    """
    configure_determinism(params.train.num_threads)
    cases = out_of_fold(json.loads(cohort.split.read_text()), params.cv, fold)
    if not model_file.is_file():
        raise ConfigError(f"{model_file} not found: run the stage train@{fold} (dvc repro)")
    model = Ensemble.load([model_file], resolve_device(params.train.device)) if cases else None
    threshold = params.postprocess.threshold
    with atomic_dir(out_dir) as tmp, torch.inference_mode():
        for case_id in cases:
            assert model is not None
            t0 = time.perf_counter()
            case = cohort.case(case_id)
            if case.label() is None:
                raise BratsegError(f"{case_id}: an out-of-fold case without a label")
            classes, _ = model.raw_classes(
                case.image(), params.inference, params.postprocess, params.train.amp
            )
            save_classes(tmp / f"{case_id}{SUFFIX}", classes)
            log.info("%s: %s out-of-fold prediction (%.1f s)", case_id, fold, time.perf_counter() - t0)
        index = {
            "fold": fold,
            "cases": list(cases),
            "threshold": threshold,
            "et_min_mean_probability": params.postprocess.et_min_mean_probability,
            "model_sha256": sha256(model_file),
        }
        (tmp / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    log.info("%s: %d out-of-fold case(s) predicted into %s", fold, len(cases), out_dir)
