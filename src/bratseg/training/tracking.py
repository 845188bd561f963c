"""MLflow tracking: one run per training, evaluation metrics added to the same run.

The store is local by default: ``sqlite:///<repository root>/mlflow.db`` with artifacts in
``<repository root>/mlartifacts``, so ``mlflow ui`` started at the root shows every run. The root is anchored
even inside ``dvc exp run --temp`` and queued experiments, whose working directory is a temporary copy: DVC
sets ``DVC_ROOT`` to the parent repository there. ``MLFLOW_TRACKING_URI`` overrides the store. Telemetry is
disabled; nothing here starts a server.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

MAX_BATCH = 900  # MLflow accepts at most 1000 entities per log_batch call


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def repository_root(cwd: Path | None = None) -> Path:
    """The repository that owns the tracking store: ``DVC_ROOT``, else the git top level, else ``cwd``."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    cwd = (cwd or Path.cwd()).resolve()
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    return Path(top) if top else cwd


def tracking_uri(cwd: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the sqlite store at the repository root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repository_root(cwd) / 'mlflow.db'}"


def git_state(cwd: Path | None = None) -> dict[str, str]:
    """Commit and dirty flag of the working tree that runs the code."""
    cwd = (cwd or Path.cwd()).resolve()
    commit = _git(["rev-parse", "HEAD"], cwd) or "unknown"
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {"git.commit": commit, "git.dirty": "unknown" if status is None else str(bool(status)).lower()}


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
        cls, experiment: str, run_name: str, tags: Mapping[str, str], uri: str | None = None
    ) -> Tracker:
        """Start a new run in ``experiment`` (created with its artifacts at the repository root if needed)."""
        client = MlflowClient(tracking_uri=uri or tracking_uri())
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            artifacts = (repository_root() / "mlartifacts").as_uri()
            try:
                exp_id = client.create_experiment(experiment, artifact_location=artifacts)
            except MlflowException:  # created meanwhile by a parallel (queued) experiment
                found = client.get_experiment_by_name(experiment)
                if found is None:
                    raise
                exp_id = found.experiment_id
        else:
            exp_id = exp.experiment_id
        run = client.create_run(exp_id, run_name=run_name, tags=dict(tags))
        return cls(client, run.info.run_id)

    @classmethod
    def attach(cls, run_id: str, uri: str | None = None) -> Tracker | None:
        """Reopen an existing run, or ``None`` if the store does not hold it."""
        client = MlflowClient(tracking_uri=uri or tracking_uri())
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
        import time

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step) for k, v in sorted(metrics.items())]
        for i in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + MAX_BATCH])

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
