"""The ``train`` stage: resume or start fresh, train, export curves and the model, track in MLflow."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from bratseg.config import Params, params_hash
from bratseg.errors import ConfigError
from bratseg.io import save_json
from bratseg.labels import n_outputs
from bratseg.layouts import MODALITIES
from bratseg.preprocess.cache import load_split
from bratseg.training.checkpoint import load_checkpoint
from bratseg.training.curves import write_curves
from bratseg.training.determinism import resolve_device
from bratseg.training.loop import train
from bratseg.training.tracking import Tracker, flatten, git_state

log = logging.getLogger(__name__)
PACKAGE = Path(__file__).resolve().parent.parent
#: Code whose change changes the trained weights: the package part of the train stage's deps in dvc.yaml.
TRAINING_CODE = (
    "models",
    "training",
    "inference/sliding_window.py",
    "inference/postprocess.py",
    "inference/predict.py",
    "evaluation/metrics.py",
    "evaluation/surface.py",
    "preprocess/cache.py",
    "preprocess/crop.py",
    "config.py",
    "labels.py",
    "layouts.py",
    "io.py",
)


def code_hash(parts: tuple[str, ...] = TRAINING_CODE) -> str:
    """Hash of the package sources that determine training (content, not timestamps)."""
    h = hashlib.sha256()
    for part in parts:
        path = PACKAGE / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(PACKAGE)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def training_fingerprint(params: Params, cache_dir: Path) -> str:
    """What a checkpoint must match to be resumed: training params, data (manifest + split) and code."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"model": params.model, "net": params.net.to_dict(), "train": params.train.to_dict()},
            sort_keys=True,
        ).encode()
    )
    h.update((cache_dir / "manifest.csv").read_bytes())
    h.update((cache_dir / "splits.json").read_bytes())
    h.update(code_hash().encode())
    return h.hexdigest()[:16]


def resumable_state(model_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The state of an interrupted run of the same training, or ``None`` after clearing ``model_dir``.

    Only an *incomplete* ``last.pt`` with the same fingerprint is resumed: anything else in ``model_dir``
    (another model, other params, a finished run re-forced with ``dvc repro -f``) is deleted, so no stale
    checkpoint can leak into a new run.
    """
    last = model_dir / "last.pt"
    if last.exists():
        state = load_checkpoint(last)
        if state.get("fingerprint") == fingerprint and not state.get("complete", True):
            return state
        log.info("previous checkpoint does not match this training: starting fresh")
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    return None


def model_meta(params: Params) -> dict[str, Any]:
    """Everything needed to rebuild the network and preprocess a new case like the training data."""
    return {
        "format": 1,
        "model": params.model,
        "net": params.net.to_dict(),
        "in_channels": len(MODALITIES),
        "out_channels": n_outputs(params.train.target),
        "modalities": list(MODALITIES),
        "target": params.train.target,
        "patch_size": list(params.train.patch_size),
        "preprocess": params.preprocess.to_dict(),
        "train_seed": params.train.seed,
    }


def _tracker(params: Params, model_dir: Path, resuming: bool, fingerprint: str) -> Tracker:
    run_file = model_dir / "run.json"
    if resuming and run_file.exists():
        tracker = Tracker.attach(json.loads(run_file.read_text())["run_id"])
        if tracker is not None:
            return tracker
    exp_name = os.environ.get("DVC_EXP_NAME", "")
    tags = {
        **git_state(),
        "params.hash": params_hash(params),
        "train.fingerprint": fingerprint,
        "seed": str(params.train.seed),
        "model": params.model,
        "dvc.exp_name": exp_name,
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
    }
    run_name = exp_name or f"{params.model}-{params_hash(params)[:8]}"
    tracker = Tracker.create(params.tracking.experiment, run_name, tags)
    tracker.log_params(flatten(params.to_dict()))
    save_json(run_file, {"run_id": tracker.run_id, "experiment": params.tracking.experiment, **tags})
    return tracker


def run_training(params: Params, cache_dir: Path, model_dir: Path, reports_dir: Path) -> None:
    """The whole stage: checkpoints and ``run.json`` in ``model_dir``, curves in ``reports_dir``."""
    device = resolve_device(params.train.device)
    split = load_split(cache_dir)
    if not split["train"]:
        raise ConfigError("split: no labelled case left for training (add cases or lower the fractions)")
    fingerprint = training_fingerprint(params, cache_dir)
    resume = resumable_state(model_dir, fingerprint)
    tracker = _tracker(params, model_dir, resume is not None, fingerprint)
    log.info(
        "training %s on %s: %d train / %d val cases, MLflow run %s",
        params.model,
        device,
        len(split["train"]),
        len(split["val"]),
        tracker.run_id,
    )
    resumed_epochs = int(resume["epoch"]) if resume is not None else 0

    def on_epoch(row: dict[str, float]) -> None:
        tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    try:
        result = train(
            params,
            split["train"],
            split["val"],
            model_dir,
            meta=model_meta(params),
            device=device,
            fingerprint=fingerprint,
            resume=resume,
            on_epoch=on_epoch,
        )
    except BaseException:
        tracker.finish("FAILED")
        raise
    files = write_curves(result.history, reports_dir)
    tracker.log_metrics({"best_epoch": float(result.best_epoch), "best_val_dice_mean": result.best_score})
    tracker.set_tags(
        {
            "train.device": str(device),
            "train.resumed_epochs": str(resumed_epochs),
            "torch.version": torch.__version__,
        }
    )
    for f in files:
        tracker.log_artifact(f, "train")
    tracker.log_artifact(model_dir / "best.pt", "model")
    params_file = model_dir / "params.json"
    save_json(params_file, params.to_dict())
    tracker.log_artifact(params_file, "model")
    tracker.finish()
