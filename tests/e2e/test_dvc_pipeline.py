"""The whole pipeline through DVC on the tiny profile: repro, rebuild, exp run, MLflow, resume, predict."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

pytestmark = pytest.mark.e2e
REGIONS = ("WT", "TC", "ET")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs(project: Path) -> dict[str, str]:
    """Digests of what must be identical between two runs: weights, metrics, predictions, curves."""
    files = [
        project / "models/fold0/best.pt",
        project / "models/fold0/last.pt",
        project / "reports/eval/metrics.json",
        project / "reports/eval/cases.csv",
        project / "reports/train/fold0/loss.csv",
        project / "reports/train/fold0/val_dice.csv",
    ]
    files += sorted((project / "data/predictions").glob("*.nii.gz"))
    files += sorted((project / "data/preprocessed/cases").rglob("*.npy"))
    return {str(f.relative_to(project)): sha(f) for f in files}


def mlflow_runs(project: Path) -> list[dict]:
    """Runs in the project's MLflow store, with their params, tags and latest metrics (read from sqlite)."""
    con = sqlite3.connect(project / "mlflow.db")
    try:
        runs = []

        def table(name: str, run_uuid: str) -> dict:
            return dict(
                con.execute(f"SELECT key, value FROM {name} WHERE run_uuid=?", (run_uuid,)).fetchall()
            )

        query = "SELECT run_uuid, status, artifact_uri FROM runs ORDER BY start_time"
        for run_uuid, status, artifacts in con.execute(query).fetchall():
            runs.append(
                {
                    "id": run_uuid,
                    "status": status,
                    "artifacts": artifacts,
                    "params": table("params", run_uuid),
                    "tags": table("tags", run_uuid),
                    "metrics": table("latest_metrics", run_uuid),
                }
            )
        return runs
    finally:
        con.close()


@pytest.fixture(scope="module")
def repro(project, run):
    run("dvc", "repro")
    return outputs(project)


def test_repro_produces_metrics_predictions_report_and_mlflow_run(project, run, repro):
    metrics = json.loads((project / "reports/eval/metrics.json").read_text())
    for metric in ("dice", "iou", "hd95", "sensitivity", "specificity"):
        for region in REGIONS:
            assert set(metrics[metric][region]) == {"mean", "median"}
    assert metrics["n_cases"] >= 1
    split = json.loads((project / "data/preprocessed/splits.json").read_text())
    for case_id in split["test"]:
        pred = nib.load(project / "data/predictions" / f"{case_id}.nii.gz")
        raw = nib.load(project / "data/raw/synthetic" / case_id / f"{case_id}_flair.nii.gz")
        assert pred.shape == raw.shape
        np.testing.assert_allclose(pred.affine, raw.affine, atol=1e-6)
        assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2, 4}
    html = (project / "reports/report.html").read_text()
    assert all(case_id in html for case_id in split["test"])
    assert "https://" not in html and "http://" not in html
    state = torch.load(project / "models/fold0/best.pt", weights_only=True)
    assert state["meta"]["model"] == "unet" and "preprocess" in state["meta"]
    runs = mlflow_runs(project)
    assert len(runs) == 1 and runs[0]["status"] == "FINISHED"
    r = runs[0]
    assert r["params"]["model"] == "unet" and r["params"]["train.epochs"] == "2"
    assert r["tags"]["seed"] == "0" and len(r["tags"]["git.commit"]) == 40
    # a rebuild of a clean commit is clean, although DVC rewrote dvc.lock and the git-tracked metrics
    assert r["tags"]["git.dirty"] == "false" and r["tags"]["git.diff_hash"] == ""
    assert {"train_loss", "val_dice_WT", "test_dice_WT_mean"} <= set(r["metrics"])
    assert r["metrics"]["test_dice_WT_mean"] == pytest.approx(metrics["dice"]["WT"]["mean"])
    assert (project / "mlartifacts").is_dir()
    assert run("dvc", "status").stdout.strip().endswith("up to date.")


def test_forced_repro_is_byte_identical(project, run, repro):
    run("dvc", "repro", "-f")
    assert outputs(project) == repro


def test_a_split_change_reruns_no_preprocessing(project, run, repro):
    """The split is its own stage: a new split.seed reruns split, train, evaluate and report, not N4."""
    split_file = project / "data/preprocessed/splits.json"
    before = json.loads(split_file.read_text())
    # the baseline's params and lock, and its outputs that DVC does not cache (git keeps them)
    kept = ("params.yaml", "dvc.lock", "reports/train/fold0/loss.csv", "reports/train/fold0/val_dice.csv")
    kept += ("reports/eval/cases.csv", "reports/eval/metrics.json")
    saved = {name: (project / name).read_text() for name in kept}
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["split"]["seed"] = params["split"]["seed"] + 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = run("dvc", "status").stdout
    assert "split:" in status and "preprocess:" not in status and "cohort:" not in status, status
    out = run("dvc", "repro").stdout
    assert "Stage 'preprocess' didn't change, skipping" in out and "Running stage 'split'" in out, out
    assert "bias_correct" not in out and "Running stage 'train@fold0'" in out
    arrays = {k: v for k, v in outputs(project).items() if k.startswith("data/preprocessed/cases/")}
    assert arrays == {k: v for k, v in repro.items() if k.startswith("data/preprocessed/cases/")}
    assert json.loads(split_file.read_text()) != before
    for name, text in saved.items():  # back to the baseline run (its other outputs are in the DVC cache)
        (project / name).write_text(text)
    run("dvc", "checkout", "--force")
    assert outputs(project) == repro


def test_exp_run_resunet_is_compared_in_dvc_and_mlflow(project, run, repro):
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "baseline results")
    run("dvc", "exp", "run", "--temp", "-S", "model=resunet", "-n", "resunet-tiny")  # runs in a temp copy
    shown = json.loads(run("dvc", "exp", "show", "--json").stdout)
    rows = {}
    for entry in shown:
        candidates = [entry] + [e for exp in entry.get("experiments") or [] for e in exp.get("revs", [])]
        for item in candidates:
            data = item.get("data") or {}
            model = data.get("params", {}).get("params.yaml", {}).get("data", {}).get("model")
            metrics = data.get("metrics", {}).get("reports/eval/metrics.json", {}).get("data")
            if model and metrics:
                rows[item.get("name") or item.get("rev")] = (model, metrics)
    assert {m for m, _ in rows.values()} == {"unet", "resunet"}, rows
    for _, metrics in rows.values():
        assert all(metrics[k][r]["mean"] is not None for k in ("dice", "iou", "hd95") for r in REGIONS)
    runs = mlflow_runs(project)
    models = {r["params"]["model"]: r for r in runs}
    assert set(models) == {"unet", "resunet"}
    assert models["resunet"]["tags"]["dvc.exp_name"] == "resunet-tiny"
    # the temporary copy is gone, but the run and its artifacts were kept in the repository's store
    assert models["resunet"]["artifacts"].startswith((project / "mlartifacts").as_uri())
    assert (project / "models/fold0/best.pt").exists()  # --temp leaves the workspace (the unet run) alone
    assert "test_dice_ET_mean" in models["resunet"]["metrics"]


def test_queued_experiment_rebuilds_what_changed_and_matches_the_workspace(project, run, repro):
    """A queued run (celery worker, temporary copy) with a new normalisation param: fresh arrays, fresh model.

    Its outputs must be exactly those of the same params rebuilt from scratch in the workspace: no array or
    checkpoint of the baseline (checked out into the copy, ``models`` is persisted) survives into it.
    """
    run(
        "dvc",
        "exp",
        "run",
        "--queue",
        "-S",
        "preprocess.normalise.clip_percentiles=[2.0,98.0]",
        "-n",
        "clip-q",
    )
    run("dvc", "queue", "start", "-j", "1")
    deadline = time.time() + 540
    while time.time() < deadline:
        status = run("dvc", "queue", "status").stdout
        line = next((s for s in status.splitlines() if " clip-q " in s), "")
        if "Success" in line or "Failed" in line:
            break
        time.sleep(2)
    run("dvc", "queue", "stop", check=False)
    assert "Success" in line, status + run("dvc", "queue", "logs", "clip-q", check=False).stdout[-4000:]
    runs = {r["tags"].get("dvc.exp_name"): r for r in mlflow_runs(project)}
    assert runs["clip-q"]["status"] == "FINISHED"
    assert runs["clip-q"]["artifacts"].startswith((project / "mlartifacts").as_uri())

    run("dvc", "exp", "apply", "clip-q")  # the experiment's params, lock file and outputs (from the cache)
    queued = outputs(project)
    arrays = [k for k in queued if k.endswith("image.npy")]
    assert arrays and all(queued[k] != repro[k] for k in arrays)  # the new param reached every array
    shutil.rmtree(project / "models")
    run("dvc", "repro", "-f")  # the same params from scratch, in the workspace
    assert outputs(project) == queued
    run("git", "checkout", "--", ".")
    run("dvc", "checkout", "--force")


def test_killed_training_resumes_to_the_same_weights(project, run, env, train_cmd):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["epochs"] = 6
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.rmtree(project / "models/fold0", ignore_errors=True)
    run(*train_cmd)
    reference = {p: sha(project / "models/fold0" / p) for p in ("best.pt", "last.pt")}

    shutil.rmtree(project / "models/fold0")
    proc = subprocess.Popen(
        train_cmd,
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    last = project / "models" / "fold0" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and torch.load(last, weights_only=True)["epoch"] >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, weights_only=True)["epoch"]
    assert 2 <= killed_at < 6
    resumed = run(*train_cmd)
    assert f"resuming after epoch {killed_at} of 6" in resumed.stderr
    assert {p: sha(project / "models/fold0" / p) for p in ("best.pt", "last.pt")} == reference


def to_brats2023(src: Path, dest_root: Path) -> Path:
    """Rewrite a BraTS 2021 case in the 2023 layout (t1n/t1c/t2w/t2f, enhancing tumour = 3)."""
    case_id = "BraTS-GLI-00042-000"
    dest = dest_root / case_id
    dest.mkdir(parents=True)
    names = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}
    for old, new in names.items():
        shutil.copy(next(src.glob(f"*_{old}.nii.gz")), dest / f"{case_id}-{new}.nii.gz")
    seg = nib.load(next(src.glob("*_seg.nii.gz")))
    data = np.asarray(seg.dataobj).copy()
    data[data == 4] = 3
    nib.save(nib.Nifti1Image(data, seg.affine, seg.header), dest / f"{case_id}-seg.nii.gz")
    return dest


def test_predict_command_on_a_brats2023_case(project, run, tmp_path):
    case = to_brats2023(project / "data/raw/synthetic/BraTS2021_00001", tmp_path)
    out = tmp_path / "pred.nii.gz"
    run("bratseg", "predict", "--model", "models", "--case", str(case), "--output", str(out))
    pred, ref = nib.load(out), nib.load(next(case.glob("*-t2f.nii.gz")))
    assert pred.shape == ref.shape
    np.testing.assert_allclose(pred.affine, ref.affine, atol=1e-6)
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2, 3}
    (case / "BraTS-GLI-00042-000-t1c.nii.gz").unlink()
    failed = run(
        "bratseg",
        "predict",
        "--model",
        "models/fold0/best.pt",
        "--case",
        str(case),
        "--output",
        str(tmp_path / "x.nii.gz"),
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("error: BraTS-GLI-00042-000: ")
    assert "missing modality t1ce" in failed.stderr
    assert not (tmp_path / "x.nii.gz").exists()
