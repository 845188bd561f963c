"""The tiny pipeline through DVC with ``train.nproc: 2``: the train stage launches torchrun, DVC records the
parameter, a second ``dvc repro`` has nothing to do, and the two processes leave one MLflow run. It starts
from the shared reference run (one process), so only the train stage runs again."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
import yaml

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tiny_repro, tmp_path_factory):
    """A copy of the shared reference run: preprocessed, trained once on one process, one MLflow run."""
    project = tmp_path_factory.mktemp("distributed") / "p"
    shutil.copytree(tiny_repro, project, symlinks=True)
    return project


def finished_runs(project) -> list[tuple[str]]:
    con = sqlite3.connect(project / "mlflow.db")
    try:
        return con.execute("SELECT status FROM runs").fetchall()
    finally:
        con.close()


def test_repro_trains_on_two_processes(project, run):
    before = finished_runs(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["nproc"] = 2
    params["train"]["num_threads"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run("dvc", "repro", "train@fold0")
    assert "launching torchrun --standalone --nproc_per_node 2" in out.stderr + out.stdout
    assert "Stage 'preprocess' didn't change, skipping" in out.stdout, out.stdout
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["train@fold0"]["params"]["params.yaml"]["train"]["nproc"] == 2
    assert run("dvc", "status", "train@fold0").stdout.strip().endswith("up to date.")
    assert "didn't change, skipping" in run("dvc", "repro", "train@fold0").stdout
    assert "x 2 processes" in (project / "logs/train-fold0.log").read_text()
    assert finished_runs(project) == [*before, ("FINISHED",)]  # one run for the two processes
