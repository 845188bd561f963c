"""Two-fold cross-validation through DVC on the tiny profile: one train stage per fold, out-of-fold
predictions, the post-processing chosen on them, per-fold metrics in DVC and MLflow, and the test split
segmented by the ensemble of both folds with that post-processing."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

pytestmark = pytest.mark.e2e
FOLDS = ("fold0", "fold1")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cv(tiny_repro, tmp_path_factory, source_run):
    """A copy of the tiny project's run, then ``dvc repro`` with cv.folds = 2: (project, runner, output)."""
    project = tmp_path_factory.mktemp("crossval") / "project"
    shutil.copytree(tiny_repro, project, symlinks=True)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["cv"] = {"folds": 2, "fold_names": list(FOLDS)}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = source_run(project)
    run("git", "commit", "-qam", "two folds")
    return project, run, run("dvc", "repro").stdout


def test_one_train_and_one_out_of_fold_stage_per_fold_and_no_preprocessing(cv):
    project, run, out = cv
    assert "Stage 'preprocess' didn't change, skipping" in out and "bias_correct" not in out
    for stage in ("split", *(f"{s}@{f}" for s in ("train", "cv_predict") for f in FOLDS), "crossval"):
        assert f"Running stage '{stage}'" in out, stage
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert {"train@fold0", "train@fold1", "cv_predict@fold0", "cv_predict@fold1", "crossval"} <= set(lock)
    split = json.loads((project / "data/preprocessed/splits.json").read_text())
    assert sorted(split["fold0"] + split["fold1"]) == sorted(split["train"]) and split["val"] == []
    for fold in FOLDS:
        index = json.loads((project / "data/cv_predictions" / fold / "index.json").read_text())
        assert index["cases"] == split[fold] and index["model_sha256"] == sha(
            project / "models" / fold / "best.pt"
        )
        assert (project / "reports/train" / fold / "val_dice.csv").is_file()
    a, b = (torch.load(project / "models" / f / "best.pt", weights_only=True)["model"] for f in FOLDS)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # two models, trained on different cases
    assert run("dvc", "status").stdout.strip().endswith("up to date.")


def test_postprocessing_is_chosen_for_both_folds_and_metrics_reach_dvc_and_mlflow(cv):
    project, run, _ = cv
    chosen = json.loads((project / "models/postprocessing.json").read_text())
    assert chosen["selected"] is True and chosen["selection"]["n_cases"] == 5
    assert {f: e["sha256"] for f, e in chosen["folds"].items()} == {
        f: sha(project / "models" / f / "best.pt") for f in FOLDS
    }
    steps = chosen["selection"]["steps"]
    assert [s["region"] for s in steps[:-1]] == ["WT", "TC", "ET"] and steps[-1]["step"] == "et_min_voxels"
    metrics = json.loads((project / "reports/cv/metrics.json").read_text())
    assert metrics["n_folds"] == 2 and metrics["pooled"]["n_cases"] == 5
    assert sum(metrics["per_fold"][f]["n_cases"] for f in FOLDS) == 5
    assert set(metrics["folds"]["dice"]["WT"]) == {"mean", "std"}
    fold_means = [metrics["per_fold"][f]["dice"]["WT"] for f in FOLDS]
    assert metrics["folds"]["dice"]["WT"]["mean"] == pytest.approx(np.mean(fold_means), abs=1e-6)
    cases = (project / "reports/cv/cases.csv").read_text().splitlines()
    assert cases[0].startswith("case_id,fold,") and len(cases) == 6
    header = run("dvc", "exp", "show", "--csv", "--no-pager").stdout.splitlines()[0].split(",")
    assert {"folds.dice.WT.mean", "folds.dice.WT.std", "dice.WT.mean"} <= set(header), header
    con = sqlite3.connect(project / "mlflow.db")
    try:
        parent_of = dict(
            con.execute("SELECT run_uuid, value FROM tags WHERE key = 'mlflow.parentRunId'").fetchall()
        )
        (parent,) = set(parent_of.values())
        assert len(parent_of) == 2  # the two folds, children of one parent
        metrics_of = lambda run_id: {  # noqa: E731
            k for (k,) in con.execute("SELECT key FROM latest_metrics WHERE run_uuid = ?", (run_id,))
        }
        assert {"cv_folds_dice_WT_mean", "cv_folds_dice_WT_std", "test_dice_WT_mean"} <= metrics_of(parent)
        assert all("cv_dice_WT" in metrics_of(child) for child in parent_of)
        status = con.execute("SELECT status FROM runs WHERE run_uuid = ?", (parent,)).fetchone()[0]
        assert status == "FINISHED"
    finally:
        con.close()
    assert "out-of-fold mean Dice" in (project / "reports/report.html").read_text()


def test_the_test_split_is_segmented_by_the_ensemble_of_both_folds(cv):
    from bratseg.cache import PreprocessedCohort
    from bratseg.config import InferenceParams
    from bratseg.inference.predict import Ensemble, predict_cached_case
    from bratseg.labels import label_set
    from bratseg.pipeline.postprocessing import read_plan_file

    project, _, out = cv
    assert "Running stage 'evaluate'" in out
    pre = project / "data/preprocessed"
    cohort = PreprocessedCohort(
        pre / "cases", pre / "splits.json", pre / "manifest.csv", pre / "fingerprint.json"
    )
    params = yaml.safe_load((project / "params.yaml").read_text())
    inference = InferenceParams.from_dict(params["inference"])
    plan, _ = read_plan_file(project / "models/postprocessing.json")
    ensemble = Ensemble.load([project / "models" / f / "best.pt" for f in FOLDS])
    split = json.loads((pre / "splits.json").read_text())
    with torch.inference_mode():
        for case_id in split["test"]:
            classes, _, _ = predict_cached_case(ensemble, cohort.case(case_id), inference, plan)
            written = nib.load(project / "data/predictions" / f"{case_id}.nii.gz")
            convention = label_set(
                cohort.case(case_id).properties["convention"]
            )  # (written in its own labels)
            np.testing.assert_array_equal(np.asarray(written.dataobj), convention.from_classes(classes))


def test_a_lost_fold_is_retrained_alone_and_byte_identically(cv):
    project, run, _ = cv
    before = {f: sha(project / "models" / f / "best.pt") for f in FOLDS}
    shutil.rmtree(project / "models/fold1")
    out = run("dvc", "repro", "-f", "-s", "train@fold1").stdout
    assert "Running stage 'train@fold1'" in out and "train@fold0" not in out
    assert {f: sha(project / "models" / f / "best.pt") for f in FOLDS} == before
    assert run("dvc", "status").stdout.strip().endswith("up to date.")
