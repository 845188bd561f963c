"""The MLflow run the stages after training log to: the training's run, or with several folds their parent.

Each fold's ``run.json`` (written by the train stage) names its run and, with ``cv.folds > 1``, the parent run
of the experiment (``parent_run_id``). The crossval, evaluate and report stages add their metrics and files to
the experiment's run: the parent with several folds, the one training run otherwise.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bratseg.tracking import Tracker, TrackingContext

log = logging.getLogger(__name__)


def read_run(run_file: Path) -> dict[str, Any]:
    """The contents of a ``run.json``."""
    run: dict[str, Any] = json.loads(Path(run_file).read_text())
    return run


def experiment_run_id(run: Mapping[str, Any]) -> str:
    """The run the experiment's results go to: the parent of a fold's run, or the run itself."""
    return str(run.get("parent_run_id") or run["run_id"])


def attach_experiment(tracking: TrackingContext, run_file: Path, what: str) -> Tracker:
    """Reopen the experiment's run of ``run_file`` (a new run if the store lost it, named after ``what``)."""
    run = read_run(run_file)
    run_id = experiment_run_id(run)
    tracker = Tracker.attach(tracking, run_id)
    if tracker is None:
        log.warning("MLflow run %s not found in the store; logging %s to a new run", run_id, what)
        tracker = Tracker.create(
            tracking,
            run["experiment"],
            f"{what}-{run_id[:8]}",
            {"restored_from": run_id, "trained_at.git.commit": run.get("git.commit", "")},
        )
    return tracker


def flat_metrics(summary: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """``{prefix}{a}_{b}_..._{z}`` for every finite number in a nested summary (``metrics.json``)."""
    out: dict[str, float] = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{name}_{key}" if name else str(key))
        elif isinstance(node, int | float) and not math.isnan(float(node)):  # (bool too: 0 or 1)
            out[prefix + name] = float(node)

    walk(summary, "")
    return out
