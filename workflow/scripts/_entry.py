"""What the DVC stage scripts share: their command lines, and the environment they run in.

The stage scripts are the entry points: they take every path from the stage's ``cmd`` in dvc.yaml, read
params.yaml (through :mod:`bratseg.paramsfile`) and the environment (DVC's and MLflow's variables), and pass
plain values into the package, which reads neither.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from pathlib import Path

import _repo  # noqa: F401  (this repository's src first)
import yaml

from bratseg.cache import PreprocessedCohort
from bratseg.tracking import TrackingContext, check_server, git_state, is_server

ROOT = Path(__file__).resolve().parents[2]
#: MLflow's HTTP client retries a failed call 7 times (exponential backoff from 2 s) and waits up to 120 s for
#: each answer: a dead server would hold every call for minutes. With these (a user's own values win) a server
#: restart of up to about a minute mid-run is ridden out, and a dead one ends the step within about a minute
#: (connection refused) or a few (no answer at all), with one ``error:`` line.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
#: Seconds the reachability check waits for a tracking server before the step starts.
SERVER_CHECK_TIMEOUT_S = 5.0


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with ``--params`` (default ``params.yaml``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="parameter file")
    return p


def add_cohort_args(p: argparse.ArgumentParser) -> None:
    """``--cases``, ``--split``, ``--manifest``, ``--fingerprint``: the outputs of preprocess and split."""
    p.add_argument("--cases", type=Path, required=True, help="folder of cached cases (preprocess stage)")
    p.add_argument("--split", type=Path, required=True, help="splits.json (split stage)")
    p.add_argument("--manifest", type=Path, required=True, help="manifest.csv (split stage)")
    p.add_argument("--fingerprint", type=Path, required=True, help="fingerprint.json (split stage)")


def cohort(args: argparse.Namespace) -> PreprocessedCohort:
    return PreprocessedCohort(args.cases, args.split, args.manifest, args.fingerprint)


def repository_root(cwd: Path) -> Path:
    """The repository that owns the tracking store: ``DVC_ROOT`` (set by DVC to the parent repository in
    ``dvc exp run --temp`` and queued runs, whose working copy is elsewhere), else the git top level."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return cwd.resolve()
    return Path(top)


def pipeline_outputs(dvc_yaml: Path) -> list[str]:
    """The files the pipeline itself writes into the git working tree: ``dvc.lock``, every stage's outs,
    and the ``.gitignore`` files DVC keeps beside them (left out of the git dirty flag)."""
    stages = yaml.safe_load(dvc_yaml.read_text()).get("stages", {}) if dvc_yaml.is_file() else {}
    outs = ["dvc.lock", ":(glob)**/.gitignore"]
    for stage in stages.values():
        body = stage.get("do", stage)  # foreach / matrix stages keep their body under "do"
        for out in body.get("outs", []) + body.get("metrics", []) + body.get("plots", []):
            path = next(iter(out)) if isinstance(out, dict) else str(out)
            # a foreach stage's outs name its item (models/${item}): every fold's
            outs.append(f":(glob){re.sub(r'[$][{][^}]*[}]', '*', path)}" if "${" in path else path)
    return outs


def tracking_context(cwd: Path | None = None, *, check: bool = True) -> TrackingContext:
    """The MLflow store and the provenance tags of this run, from the environment.

    ``MLFLOW_TRACKING_URI`` if set (a team's ``mlflow server``; the server then chooses where artifacts go),
    else the sqlite store ``mlflow.db`` with artifacts in ``mlartifacts/``, both at the repository root.

    For a server, MLflow's HTTP retries are bounded (:data:`MLFLOW_HTTP_DEFAULTS`) and, with ``check``, the
    server must answer within :data:`SERVER_CHECK_TIMEOUT_S`, else a :class:`~bratseg.tracking.TrackingError`
    (one ``error:`` line naming the URI) ends the step before it does any work.
    """
    cwd = (cwd or Path.cwd()).resolve()
    root = repository_root(cwd)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if is_server(uri):
        for name, value in MLFLOW_HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        if check:
            check_server(uri, SERVER_CHECK_TIMEOUT_S)
    artifacts = None if uri else (root / "mlartifacts").as_uri()
    tags = {
        **git_state(cwd, exclude=pipeline_outputs(cwd / "dvc.yaml")),
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
    }
    store = uri or f"sqlite:///{root / 'mlflow.db'}"
    return TrackingContext(uri=store, artifact_location=artifacts, tags=tags)
