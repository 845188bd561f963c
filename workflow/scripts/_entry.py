"""What the DVC stage scripts share: their command lines, and the environment they run in.

The stage scripts are the entry points: they take every path from the stage's ``cmd`` in dvc.yaml, read
params.yaml (through :mod:`bratseg.paramsfile`) and the environment (DVC's and MLflow's variables), and pass
plain values into the package, which reads neither.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import _repo  # noqa: F401  (this repository's src first)
import yaml

from bratseg.cache import PreprocessedCohort
from bratseg.tracking import TrackingContext, git_state

ROOT = Path(__file__).resolve().parents[2]


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
            outs.append(next(iter(out)) if isinstance(out, dict) else str(out))
    return outs


def tracking_context(cwd: Path | None = None) -> TrackingContext:
    """The MLflow store and the provenance tags of this run, from the environment.

    ``MLFLOW_TRACKING_URI`` if set (a team's ``mlflow server``; the server then chooses where artifacts go),
    else the sqlite store ``mlflow.db`` with artifacts in ``mlartifacts/``, both at the repository root.
    """
    cwd = (cwd or Path.cwd()).resolve()
    root = repository_root(cwd)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    artifacts = None if uri else (root / "mlartifacts").as_uri()
    tags = {
        **git_state(cwd, exclude=pipeline_outputs(cwd / "dvc.yaml")),
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
    }
    store = uri or f"sqlite:///{root / 'mlflow.db'}"
    return TrackingContext(uri=store, artifact_location=artifacts, tags=tags)
