"""MLflow tracking: one run per training, evaluation metrics and the report added to the same run.

Where the store is comes from the caller (:class:`TrackingContext`): the pipeline's entry points resolve it
from the environment (``workflow/scripts/_entry.py``): ``MLFLOW_TRACKING_URI`` if set, else
``sqlite:///<repository root>/mlflow.db`` with artifacts in ``<repository root>/mlartifacts``, anchored at
the parent repository even inside ``dvc exp run --temp`` and queued experiments. Nothing here reads the
environment or starts a server. MLflow's telemetry is switched off before MLflow is imported.

A tracking server that does not answer ends the step with one line naming it (:class:`TrackingError`), never a
traceback: :func:`check_server` before any work is done (the entry points call it), and every call of a
:class:`Tracker` afterwards (MLflow's own retries, bounded by the entry points, come first).
"""

from __future__ import annotations

import hashlib
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from requests.exceptions import RequestException
from urllib3.exceptions import HTTPError as Urllib3Error

from bratseg.errors import BratsegError

MAX_BATCH = 900  # MLflow accepts at most 1000 entities per log_batch call
#: The tag that makes a run the child of another (MLflow's nested runs).
PARENT_TAG = "mlflow.parentRunId"


class TrackingError(BratsegError):
    """The MLflow tracking server does not answer. The message names its URI."""


def shown_uri(uri: str) -> str:
    """``uri`` without a password (``https://user:secret@host`` → ``https://user@host``), for messages."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def is_server(uri: str) -> bool:
    """Whether ``uri`` names an HTTP(S) tracking server (not a local store such as ``sqlite:///…``)."""
    return urllib.parse.urlsplit(uri).scheme in ("http", "https")


def check_server(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast when the HTTP tracking server ``uri`` does not answer, before a step does any work.

    One ``GET <uri>/health`` (the liveness endpoint of ``mlflow server``), no retry. Any HTTP answer counts,
    an error status too (a server behind authentication or a proxy without ``/health`` is up), and so does a
    TLS handshake (MLflow's client applies its own certificate settings). Local stores are not probed.

    Args:
        uri: the tracking URI.
        timeout_s: seconds to wait for the connection and the answer (> 0).

    Raises:
        TrackingError: nothing answered at ``uri`` (refused, unknown host, timed out), naming it.
        ValueError: ``timeout_s`` is not positive.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if not is_server(uri):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, ssl.SSLError):
            return
        raise TrackingError(
            f"MLflow tracking server {shown_uri(uri)} does not answer ({reason}); start it, or set "
            "MLFLOW_TRACKING_URI to one that runs (unset: the local store)"
        ) from None


def _no_answer(exc: BaseException) -> BaseException | None:
    """The innermost connection or timeout error behind ``exc`` (MLflow wraps them), if there is one."""
    found: BaseException | None = None
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (RequestException, Urllib3Error, ConnectionError, TimeoutError)):
            found = seen
        seen = seen.__cause__ or seen.__context__
    return found


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


def _excluded(pathspec: str) -> str:
    """``pathspec`` as an exclusion; its own magic words kept (``:(glob)a/*`` -> ``:(exclude,glob)a/*``: git
    reads no second magic prefix, so ``:(exclude):(glob)a/*`` would exclude nothing)."""
    if pathspec.startswith(":(") and ")" in pathspec:
        return f":(exclude,{pathspec[2:]}"
    return f":(exclude){pathspec}"


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
    spec = ["--", ".", *(_excluded(p) for p in exclude)]
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


def _answered(uri: str, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``; a server that does not answer becomes a :class:`TrackingError` naming it."""
    try:
        return call(*args, **kwargs)
    except MlflowException as exc:
        cause = _no_answer(exc)
        if cause is None:
            raise
        raise TrackingError(
            f"MLflow tracking server {shown_uri(uri)} does not answer ({what}): {type(cause).__name__}"
        ) from exc


def _experiment_id(client: MlflowClient, context: TrackingContext, experiment: str) -> str:
    """The id of ``experiment``, created at ``context.artifact_location`` if it does not exist yet."""
    exp = _answered(context.uri, "experiment", client.get_experiment_by_name, experiment)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(experiment, artifact_location=context.artifact_location))
    except MlflowException:  # created meanwhile by a parallel (queued) experiment, or no answer
        found = _answered(context.uri, "experiment", client.get_experiment_by_name, experiment)
        if found is None:
            raise
        return str(found.experiment_id)


class Tracker:
    """A handle on one MLflow run. A server that stops answering raises :class:`TrackingError`."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        return _answered(self.client.tracking_uri, f"{what}, run {self.run_id}", call, *args, **kwargs)

    @classmethod
    def create(
        cls,
        context: TrackingContext,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
    ) -> Tracker:
        """Start a new run in ``experiment`` (created at ``context.artifact_location`` if needed), tagged with
        ``context.tags`` and ``tags``; a child of ``parent_run_id`` (tag ``mlflow.parentRunId``) if given."""
        client = MlflowClient(tracking_uri=context.uri)
        exp_id = _experiment_id(client, context, experiment)
        tags = {**context.tags, **tags}
        if parent_run_id is not None:
            tags[PARENT_TAG] = parent_run_id
        run = _answered(context.uri, "new run", client.create_run, exp_id, run_name=run_name, tags=tags)
        return cls(client, run.info.run_id)

    @classmethod
    def find_or_create(
        cls,
        context: TrackingContext,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str],
        key: str,
    ) -> tuple[Tracker, bool]:
        """The run of ``experiment`` whose tag ``key`` has the value ``tags[key]`` (the oldest, if several),
        set running again; else a new run as :meth:`create`. Returns it and whether it was created.

        The parent run of a cross-validation: every fold's stage asks for it by the same key, the first one
        creates it.
        """
        if key not in tags:
            raise ValueError(f"tags must hold the key tag {key!r}")
        client = MlflowClient(tracking_uri=context.uri)
        exp_id = _experiment_id(client, context, experiment)
        query = f"tags.`{key}` = '{tags[key]}'"
        found = _answered(
            context.uri, "search", client.search_runs, [exp_id], query, order_by=["attributes.start_time ASC"]
        )
        if found:
            tracker = cls(client, found[0].info.run_id)
            tracker._call("reopen", client.update_run, tracker.run_id, status="RUNNING")
            return tracker, False
        return cls.create(context, experiment, run_name, tags), True

    @classmethod
    def attach(cls, context: TrackingContext, run_id: str) -> Tracker | None:
        """Reopen an existing run, or ``None`` if the store does not hold it."""
        client = MlflowClient(tracking_uri=context.uri)
        try:
            _answered(context.uri, f"run {run_id}", client.get_run, run_id)
        except MlflowException:
            return None
        tracker = cls(client, run_id)
        tracker._call("reopen", client.update_run, run_id, status="RUNNING")
        return tracker

    def log_params(self, params: Mapping[str, str]) -> None:
        items = [Param(k, v) for k, v in sorted(params.items())]
        for i in range(0, len(items), MAX_BATCH):
            self._call("params", self.client.log_batch, self.run_id, params=items[i : i + MAX_BATCH])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        items = [RunTag(k, v) for k, v in sorted(tags.items())]
        self._call("tags", self.client.log_batch, self.run_id, tags=items)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step) for k, v in sorted(metrics.items())]
        for i in range(0, len(items), MAX_BATCH):
            self._call("metrics", self.client.log_batch, self.run_id, metrics=items[i : i + MAX_BATCH])

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        what = f"artifact {Path(path).name}"
        self._call(what, self.client.log_artifact, self.run_id, str(path), artifact_path)

    def finish(self, status: str = "FINISHED") -> None:
        self._call(f"end, {status}", self.client.set_terminated, self.run_id, status=status)
