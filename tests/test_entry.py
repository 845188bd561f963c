"""The stage scripts' environment: where the MLflow store is, and which files the dirty flag ignores."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

import _entry  # noqa: E402

from bratseg.tracking import TrackingError  # noqa: E402


def test_store_is_anchored_at_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    context = _entry.tracking_context(sub)
    assert context.uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert context.artifact_location == (tmp_path.resolve() / "mlartifacts").as_uri()
    # inside `dvc exp run --temp` the working copy lives elsewhere; DVC_ROOT names the parent repository
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "parent"))
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    context = _entry.tracking_context(sub)
    assert context.uri == f"sqlite:///{(tmp_path / 'parent').resolve() / 'mlflow.db'}"
    assert context.tags["dvc.exp_name"] == "exp-1"
    # a team's server decides where artifacts go
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    context = _entry.tracking_context(sub, check=False)
    assert context.uri == "http://127.0.0.1:5000" and context.artifact_location is None


def test_a_dead_tracking_server_is_named_before_any_work(tmp_path, monkeypatch):
    """The check is in the context every stage script builds first: one line, the URI, no long retries."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in _entry.MLFLOW_HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # a user's own setting wins
    with pytest.raises(TrackingError, match=f"^MLflow tracking server {uri} does not answer"):
        _entry.tracking_context(tmp_path)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == _entry.MLFLOW_HTTP_DEFAULTS[
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
    ]
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


def test_a_local_store_sets_no_http_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in _entry.MLFLOW_HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    assert _entry.tracking_context(tmp_path).uri.startswith("sqlite:///")
    assert not set(_entry.MLFLOW_HTTP_DEFAULTS) & set(os.environ)


def test_pipeline_outputs_are_the_lock_and_every_declared_out():
    outs = _entry.pipeline_outputs(ROOT / "dvc.yaml")
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs_of = [s.get("outs", []) for s in stages.values()]
    declared = [next(iter(o)) if isinstance(o, dict) else o for stage_outs in outs_of for o in stage_outs]
    assert "dvc.lock" in outs and set(declared) <= set(outs)
    assert "reports/eval/metrics.json" in outs and "params.yaml" not in outs
