import subprocess

import pytest

from bratseg.training import tracking
from bratseg.training.tracking import Tracker, flatten, git_state, repository_root, tracking_uri


def test_flatten_nested_params():
    flat = flatten({"model": "unet", "train": {"lr": 0.1, "patch_size": [64, 64], "augment": {"flip": True}}})
    assert flat == {
        "model": "unet",
        "train.lr": "0.1",
        "train.patch_size": "[64, 64]",
        "train.augment.flip": "True",
    }


def test_store_is_anchored_at_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert repository_root(sub) == tmp_path.resolve()
    assert tracking_uri(sub) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    # inside `dvc exp run --temp` the working copy lives elsewhere; DVC_ROOT names the parent repository
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "parent"))
    assert repository_root(sub) == (tmp_path / "parent").resolve()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/x.db")
    assert tracking_uri(sub) == "sqlite:////elsewhere/x.db"


def test_git_state_outside_a_repository(tmp_path):
    assert git_state(tmp_path) == {"git.commit": "unknown", "git.dirty": "unknown"}


def test_telemetry_is_off_before_mlflow_loads():
    import os

    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert tracking.os is os


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_run_lifecycle_in_a_local_store(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = Tracker.create("exp", "run-1", {"seed": "0"}, uri=uri)
    run.log_params({"train.lr": "0.1"})
    run.log_metrics({"loss": 0.5}, step=1)
    artifact = tmp_path / "a.txt"
    artifact.write_text("x")
    run.log_artifact(artifact, "files")
    run.finish()
    again = Tracker.attach(run.run_id, uri=uri)
    assert again is not None
    data = again.client.get_run(run.run_id).data
    assert data.params == {"train.lr": "0.1"} and data.metrics == {"loss": 0.5} and data.tags["seed"] == "0"
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts at the root too, not in the working directory
    assert Tracker.attach("0" * 32, uri=uri) is None
