"""The tiny pipeline through DVC with ``train.nproc: 2``: the train stage launches torchrun, DVC records the
parameter, a second ``dvc repro`` has nothing to do, and the two processes leave one MLflow run."""

from __future__ import annotations

import sqlite3

import pytest
import yaml

pytestmark = pytest.mark.e2e


def test_repro_trains_on_two_processes(project, run):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["nproc"] = 2
    params["train"]["num_threads"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run("dvc", "repro", "train@fold0")
    assert "launching torchrun --standalone --nproc_per_node 2" in out.stderr + out.stdout
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["train@fold0"]["params"]["params.yaml"]["train"]["nproc"] == 2
    assert run("dvc", "status", "train@fold0").stdout.strip().endswith("up to date.")
    assert "didn't change, skipping" in run("dvc", "repro", "train@fold0").stdout
    assert "x 2 processes" in (project / "logs/train-fold0.log").read_text()
    con = sqlite3.connect(project / "mlflow.db")
    try:
        runs = con.execute("SELECT status FROM runs").fetchall()
    finally:
        con.close()
    assert runs == [("FINISHED",)]
