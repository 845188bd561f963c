"""The ``train`` stage: resume or start fresh, train with sliding-window validation, export curves and the
model, track in MLflow.

One stage per cross-validation fold (``train@fold0`` ...; ``cv.folds = 1``: the one fold ``fold0`` trains on
the train split and validates on val). With several folds each fold's MLflow run is a child (tag
``mlflow.parentRunId``) of one parent run for the experiment, which the first fold creates and the others find
again by its tag ``cv.parent`` (a hash of the params, the code revision and the DVC experiment name).

On several processes (``train.nproc``, a :class:`~bratseg.training.distributed.World` from the launcher)
every rank runs :func:`run_training`: rank 0 decides whether to resume (and clears ``model_dir`` if not),
then every rank loads the same ``last.pt``; validation is shared out by case; rank 0 alone keeps the MLflow
run, ``run.json``, the curves and the checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bratseg.cache import CachedCase, PreprocessedCohort
from bratseg.codedeps import closure, sources_hash
from bratseg.config import Params, params_hash
from bratseg.errors import ConfigError
from bratseg.evaluation.metrics import dice
from bratseg.inference.postprocess import probabilities_to_classes
from bratseg.inference.predict import probability_fn
from bratseg.inference.sliding_window import sliding_window_predict
from bratseg.io import save_json
from bratseg.labels import LabelSet
from bratseg.layouts import MODALITIES
from bratseg.models.checkpoint import load_checkpoint
from bratseg.pipeline.folds import fold_of
from bratseg.runtime import amp_dtype, resolve_device
from bratseg.tracking import Tracker, TrackingContext, flatten
from bratseg.training import distributed
from bratseg.training.curves import write_curves
from bratseg.training.distributed import SINGLE, World
from bratseg.training.loop import TrainResult, Validator, train

log = logging.getLogger(__name__)


def code_hash() -> str:
    """Hash of the package sources this stage runs (its import closure): content, not timestamps."""
    return sources_hash(closure([Path(__file__)]))


def training_fingerprint(params: Params, cohort: PreprocessedCohort, fold: str = "fold0") -> str:
    """What a checkpoint must match to be resumed: training params, fold, data (manifest + split), code."""
    h = hashlib.sha256()
    training = {"model": params.model, "net": params.net.to_dict(), "train": params.train.to_dict()}
    h.update(json.dumps(training, sort_keys=True).encode())
    if (fold, params.cv.folds) != ("fold0", 1):  # (the one fold of a single split hashes as it always has)
        h.update(json.dumps({"fold": fold, "folds": params.cv.folds}, sort_keys=True).encode())
    h.update(cohort.manifest.read_bytes())
    h.update(cohort.split.read_bytes())
    h.update(cohort.fingerprint.read_bytes())
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


def model_meta(params: Params, labels: LabelSet, target_spacing: list[float] | None) -> dict[str, Any]:
    """Everything needed to rebuild the network and preprocess a new case like the training data: the label
    set (outputs and their decoding), and the spacing the cases were resampled to (``None``: native)."""
    return {
        "format": 2,
        "model": params.model,
        "net": params.net.to_dict(),
        "in_channels": len(MODALITIES),
        "out_channels": labels.n_outputs(params.train.target),
        "labels": labels.name,
        "modalities": list(MODALITIES),
        "target": params.train.target,
        "patch_size": list(params.train.patch_size),
        "preprocess": params.preprocess.to_dict(),
        "target_spacing_mm": target_spacing,
        "resample_to": params.data.resample_to,
        "train_seed": params.train.seed,
    }


def make_validator(
    cases: Sequence[CachedCase],
    params: Params,
    device: torch.device,
    labels: LabelSet,
    world: World = SINGLE,
) -> Validator | None:
    """Mean Dice per evaluated region of ``labels`` over whole validation cases (sliding window, BraTS
    empty-mask convention); ``None`` when there is no validation case.

    Several processes share the cases out (rank r scores cases r, r + N, ...) and gather the per-case
    scores in case order, so every rank returns the one-process means of the same per-case scores."""
    if not cases:
        return None
    target = params.train.target
    regions = labels.region_names

    def validate(model: nn.Module) -> dict[str, float]:
        predictor = probability_fn(model, target)
        rows: list[list[float]] = []
        for case in distributed.shard(cases, world):
            probs = sliding_window_predict(
                case.image(),
                predictor,
                patch_size=params.train.patch_size,
                n_outputs=labels.n_outputs(target),
                overlap=params.train.val_overlap,
                batch_size=params.train.batch_size,
                device=device,
                amp_dtype=amp_dtype(device, params.train.amp),
            )
            pred = labels.region_masks(probabilities_to_classes(probs, target, 0.5, labels))
            label = case.label()
            assert label is not None
            ref = labels.region_masks(np.asarray(label))
            rows.append([dice(pred[i], ref[i], empty="brats") for i in range(len(regions))])
        rows = distributed.gather_shards(rows, world)
        out = {f"val_dice_{r}": float(np.mean([row[i] for row in rows])) for i, r in enumerate(regions)}
        out["val_dice_mean"] = float(np.mean([out[f"val_dice_{r}"] for r in regions]))
        return out

    return validate


def parent_key(params: Params, context: TrackingContext) -> str:
    """The tag value that finds the parent run of a cross-validation again: params, code revision, DVC
    experiment."""
    keys = ("git.commit", "git.diff_hash", "dvc.exp_name")
    data = {"params": params_hash(params), **{k: context.tags.get(k, "") for k in keys}}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _parent(params: Params, context: TrackingContext, tags: dict[str, str]) -> Tracker:
    """The parent run of the folds (found again, or created with the params logged)."""
    exp_name = context.tags.get("dvc.exp_name", "")
    name = exp_name or f"cv{params.cv.folds}-{params.model}-{params_hash(params)[:8]}"
    parent_tags = {**tags, "cv.parent": parent_key(params, context)}
    tracker, created = Tracker.find_or_create(
        context, params.tracking.experiment, name, parent_tags, key="cv.parent"
    )
    if created:
        tracker.log_params(flatten(params.to_dict()))
    return tracker


def _tracker(
    params: Params, context: TrackingContext, model_dir: Path, resuming: bool, fingerprint: str, fold: str
) -> tuple[Tracker, Tracker | None]:
    """The fold's run, and the parent run with several folds (``None`` for one)."""
    run_file = model_dir / "run.json"
    tags = {"params.hash": params_hash(params), "seed": str(params.train.seed), "model": params.model}
    parent = None
    if params.cv.folds > 1:
        parent = _parent(params, context, {**tags, "cv.folds": str(params.cv.folds)})
    if resuming and run_file.exists():
        tracker = Tracker.attach(context, json.loads(run_file.read_text())["run_id"])
        if tracker is not None:
            return tracker, parent
    tags["train.fingerprint"] = fingerprint
    if parent is not None:
        tags.update({"cv.fold": fold, "cv.folds": str(params.cv.folds)})
    exp_name = context.tags.get("dvc.exp_name", "")
    run_name = exp_name or f"{params.model}-{params_hash(params)[:8]}"
    if parent is not None:
        run_name = f"{run_name}-{fold}"
    parent_id = parent.run_id if parent is not None else None
    tracker = Tracker.create(context, params.tracking.experiment, run_name, tags, parent_run_id=parent_id)
    tracker.log_params(flatten(params.to_dict()))
    run = {"run_id": tracker.run_id, "experiment": params.tracking.experiment, **context.tags, **tags}
    if parent_id is not None:
        run["parent_run_id"] = parent_id
    save_json(run_file, run)
    return tracker, parent


def _resume(model_dir: Path, fingerprint: str, world: World) -> dict[str, Any] | None:
    """Rank 0 keeps or clears ``model_dir`` (:func:`resumable_state`); then every rank loads ``last.pt``
    when the run resumes."""
    resume = resumable_state(model_dir, fingerprint) if world.main else None
    if distributed.broadcast(resume is not None, world) and not world.main:
        resume = load_checkpoint(model_dir / "last.pt")
    return resume


def _export(
    result: TrainResult,
    model_dir: Path,
    reports_dir: Path,
    params: Params,
    tracker: Tracker,
    tags: dict[str, str],
    regions: tuple[str, ...],
) -> None:
    """Rank 0, after training: curves, MLflow metrics, tags and artifacts, ``params.json``; the run ends."""
    files = write_curves(result.history, reports_dir, regions)
    tracker.log_metrics({"best_epoch": float(result.best_epoch), "best_val_dice_mean": result.best_score})
    tracker.set_tags(tags)
    for f in files:
        tracker.log_artifact(f, "train")
    tracker.log_artifact(model_dir / "best.pt", "model")
    params_file = model_dir / "params.json"
    save_json(params_file, params.to_dict())
    tracker.log_artifact(params_file, "model")
    tracker.finish()


def fold_cases(
    cohort: PreprocessedCohort, params: Params, fold: str
) -> tuple[list[CachedCase], list[CachedCase]]:
    """The cached training and validation cases of ``fold`` (see :mod:`bratseg.pipeline.folds`)."""
    chosen = fold_of(json.loads(cohort.split.read_text()), params.cv, fold)
    return [cohort.case(c) for c in chosen.train], [cohort.case(c) for c in chosen.val]


def run_training(
    params: Params,
    cohort: PreprocessedCohort,
    model_dir: Path,
    reports_dir: Path,
    tracking: TrackingContext,
    world: World = SINGLE,
    fold: str = "fold0",
) -> None:
    """The whole stage for one fold: checkpoints and ``run.json`` in ``model_dir``, curves in ``reports_dir``.

    ``world``: this process among ``train.nproc`` (each calls this with the same arguments). ``fold``: one of
    ``cv.fold_names``.

    Raises:
        ConfigError: for settings that cannot run (no training case, ``train.nproc`` impossible here, a split
            written for another ``cv.folds``).
    """
    device = resolve_device(params.train.device)
    distributed.check_world(params.train.nproc, world.size, world.local_size, device, params.net.norm)
    train_cases, val_cases = fold_cases(cohort, params, fold)
    labels = cohort.labels()
    if not train_cases:
        raise ConfigError("split: no labelled case left for training (add cases or lower the fractions)")
    device = distributed.init(world, device)
    fingerprint = training_fingerprint(params, cohort, fold)
    resume = _resume(model_dir, fingerprint, world)
    tracker, parent = None, None
    if world.main:
        tracker, parent = _tracker(params, tracking, model_dir, resume is not None, fingerprint, fold)
    if tracker is not None:
        log.info(
            "training %s%s on %s%s: %d train / %d val cases, MLflow run %s",
            params.model,
            f" {fold} of {params.cv.folds}" if params.cv.folds > 1 else "",
            device,
            f" x {world.size} processes" if world.distributed else "",
            len(train_cases),
            len(val_cases),
            tracker.run_id,
        )
    resumed_epochs = int(resume["epoch"]) if resume is not None else 0

    def on_epoch(row: dict[str, float]) -> None:
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    try:
        result = train(
            params,
            train_cases,
            model_dir,
            meta=model_meta(params, labels, cohort.target_spacing()),
            device=device,
            fingerprint=fingerprint,
            validate=make_validator(val_cases, params, device, labels, world),
            labels=labels,
            resume=resume,
            on_epoch=on_epoch,
            world=world,
        )
    except BaseException:
        for run in (tracker, parent):
            if run is not None:
                run.finish("FAILED")
        raise
    if tracker is not None:
        tags = {
            "train.device": str(device),
            "train.resumed_epochs": str(resumed_epochs),
            "torch.version": torch.__version__,
        }
        _export(result, model_dir, reports_dir, params, tracker, tags, labels.region_names)
    if parent is not None:
        parent.finish()
    distributed.shutdown(world)
