"""MLflow tracking: one run per training, evaluation metrics and the report added to the same run.

Where the store is comes from the caller (:class:`TrackingContext`): the pipeline's entry points resolve it
from the environment (``workflow/scripts/_entry.py``): ``MLFLOW_TRACKING_URI`` if set, else
``sqlite:///<repository root>/mlflow.db`` with artifacts in ``<repository root>/mlartifacts``, anchored at
the parent repository even inside ``dvc exp run --temp`` and queued experiments. Nothing here reads the
environment or starts a server. MLflow's telemetry is switched off before MLflow is imported.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

MAX_BATCH = 900  # MLflow accepts at most 1000 entities per log_batch call


@dataclass(frozen=True)
class TrackingContext:
    """Where runs go, and the provenance tags every run of this invocation carries.

    Attributes:
        uri: MLflow tracking URI (``sqlite:///…/mlflow.db``, ``http://127.0.0.1:5000``, …).
        artifact_location: artifact root of an experiment created here (``None``: the server's default,
            e.g. its ``--serve-artifacts`` store).
        tags: provenance (git commit, dirty flag and diff hash, DVC experiment name, baseline revision).
    """

    uri: str
    artifact_location: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode("utf-8", "surrogateescape")


def git_state(cwd: Path, exclude: Sequence[str] = ()) -> dict[str, str]:
    """Commit of ``cwd``'s repository and whether the tracked files differ from it.

    Args:
        cwd: a directory inside the working tree.
        exclude: pathspecs left out of the comparison (files the pipeline itself writes, such as
            ``dvc.lock`` and DVC outputs kept in git), so that a clean rebuild is tagged clean.

    Returns:
        ``git.commit`` (40 hex digits or ``unknown``), ``git.dirty`` (``true``, ``false`` or ``unknown``) and
        ``git.diff_hash``: the first 16 hex digits of the SHA-256 of ``git diff HEAD`` over the compared
        files (empty when clean), which tells two dirty states apart.
    """
    commit = (_git(["rev-parse", "HEAD"], cwd) or "").strip() or "unknown"
    spec = ["--", ".", *(f":(exclude){p}" for p in exclude)]
    status = _git(["status", "--porcelain", "--untracked-files=no", *spec], cwd)
    if status is None or commit == "unknown":
        return {"git.commit": commit, "git.dirty": "unknown", "git.diff_hash": ""}
    diff = _git(["diff", "--binary", "HEAD", *spec], cwd) if status.strip() else ""
    digest = hashlib.sha256((diff or "").encode("utf-8", "surrogateescape")).hexdigest()[:16] if diff else ""
    return {"git.commit": commit, "git.dirty": str(bool(status.strip())).lower(), "git.diff_hash": digest}


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 0.1}}`` → ``{"train.lr": "0.1"}`` (lists are written as JSON-ish strings)."""
    out: dict[str, str] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


class Tracker:
    """A handle on one MLflow run."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    @classmethod
    def create(
        cls, context: TrackingContext, experiment: str, run_name: str, tags: Mapping[str, str]
    ) -> Tracker:
        """Start a new run in ``experiment`` (created at ``context.artifact_location`` if needed), tagged with
        ``context.tags`` and ``tags``."""
        client = MlflowClient(tracking_uri=context.uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            try:
                exp_id = client.create_experiment(experiment, artifact_location=context.artifact_location)
            except MlflowException:  # created meanwhile by a parallel (queued) experiment
                found = client.get_experiment_by_name(experiment)
                if found is None:
                    raise
                exp_id = found.experiment_id
        else:
            exp_id = exp.experiment_id
        run = client.create_run(exp_id, run_name=run_name, tags={**context.tags, **tags})
        return cls(client, run.info.run_id)

    @classmethod
    def attach(cls, context: TrackingContext, run_id: str) -> Tracker | None:
        """Reopen an existing run, or ``None`` if the store does not hold it."""
        client = MlflowClient(tracking_uri=context.uri)
        try:
            client.get_run(run_id)
        except MlflowException:
            return None
        client.update_run(run_id, status="RUNNING")
        return cls(client, run_id)

    def log_params(self, params: Mapping[str, str]) -> None:
        items = [Param(k, v) for k, v in sorted(params.items())]
        for i in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + MAX_BATCH])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in sorted(tags.items())])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step) for k, v in sorted(metrics.items())]
        for i in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + MAX_BATCH])

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
