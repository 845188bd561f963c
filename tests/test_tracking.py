import http.server
import socket
import subprocess
import sys
import threading
import time

import pytest
from mlflow.tracking import MlflowClient

from bratseg.tracking import (
    Tracker,
    TrackingContext,
    TrackingError,
    check_server,
    flatten,
    git_state,
    shown_uri,
)


def test_flatten_nested_params():
    flat = flatten({"model": "unet", "train": {"lr": 0.1, "patch_size": [64, 64], "augment": {"flip": True}}})
    assert flat == {
        "model": "unet",
        "train.lr": "0.1",
        "train.patch_size": "[64, 64]",
        "train.augment.flip": "True",
    }


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.org")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    (tmp_path / "dvc.lock").write_text("x\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.json").write_text("{}\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "init")
    return tmp_path


def test_git_state_is_clean_when_only_pipeline_outputs_changed(repo):
    exclude = ["dvc.lock", "out/metrics.json"]
    clean = git_state(repo, exclude)
    assert clean["git.dirty"] == "false" and clean["git.diff_hash"] == "" and len(clean["git.commit"]) == 40
    (repo / "dvc.lock").write_text("rewritten by dvc\n")
    (repo / "out" / "metrics.json").write_text('{"dice": 1}\n')
    assert git_state(repo, exclude) == clean  # a rebuild rewrote only what the pipeline writes
    assert git_state(repo)["git.dirty"] == "true"  # without the exclusions it would read dirty


def test_git_state_excludes_glob_pathspecs(repo):
    """Outputs of a foreach stage (``reports/<fold>/...``) and DVC's .gitignore files at any depth."""
    (repo / "out" / "fold0").mkdir()
    (repo / "out" / "fold0" / "loss.csv").write_text("1\n")
    (repo / "out" / ".gitignore").write_text("/a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "outputs")
    exclude = ["dvc.lock", ":(glob)out/*/loss.csv", ":(glob)**/.gitignore"]
    clean = git_state(repo, exclude)
    (repo / "out" / "fold0" / "loss.csv").write_text("2\n")
    (repo / "out" / ".gitignore").write_text("/a\n/b\n")
    assert git_state(repo, exclude) == clean and clean["git.dirty"] == "false"
    (repo / "params.yaml").write_text("a: 2\n")
    assert git_state(repo, exclude)["git.dirty"] == "true"


def test_git_state_tells_two_dirty_states_apart(repo):
    (repo / "params.yaml").write_text("a: 2\n")
    first = git_state(repo, ["dvc.lock"])
    assert first["git.dirty"] == "true" and len(first["git.diff_hash"]) == 16
    (repo / "params.yaml").write_text("a: 3\n")
    second = git_state(repo, ["dvc.lock"])
    assert second["git.dirty"] == "true" and second["git.diff_hash"] != first["git.diff_hash"]
    (repo / "params.yaml").write_text("a: 2\n")
    assert git_state(repo, ["dvc.lock"]) == first  # the hash is of the content, not of the time


def test_git_state_outside_a_repository(tmp_path):
    assert git_state(tmp_path) == {"git.commit": "unknown", "git.dirty": "unknown", "git.diff_hash": ""}


def test_telemetry_is_off_before_mlflow_loads():
    """In a fresh interpreter without the variable, it is already set when mlflow is first imported."""
    probe = """
import importlib.abc, os, sys
seen = {}
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "mlflow" and "mlflow" not in seen:
            seen["mlflow"] = os.environ.get("MLFLOW_DISABLE_TELEMETRY")
        return None
sys.meta_path.insert(0, Watch())
import bratseg.tracking
print(seen["mlflow"])
"""
    env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "true"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_run_lifecycle_in_a_local_store(tmp_path):
    context = TrackingContext(
        uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_location=(tmp_path / "mlartifacts").as_uri(),
        tags={"git.commit": "abc"},
    )
    run = Tracker.create(context, "exp", "run-1", {"seed": "0"})
    run.log_params({"train.lr": "0.1"})
    run.log_metrics({"loss": 0.5}, step=1)
    artifact = tmp_path / "a.txt"
    artifact.write_text("x")
    run.log_artifact(artifact, "files")
    run.finish()
    again = Tracker.attach(context, run.run_id)
    assert again is not None
    data = again.client.get_run(run.run_id).data
    assert data.params == {"train.lr": "0.1"} and data.metrics == {"loss": 0.5}
    assert data.tags["seed"] == "0" and data.tags["git.commit"] == "abc"
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts where the context said, not in the cwd
    assert Tracker.attach(context, "0" * 32) is None


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_404():
    """A server on 127.0.0.1 that answers every request with 404 (up, but no MLflow ``/health``)."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_check_server_names_a_dead_server_at_once():
    uri = f"http://127.0.0.1:{closed_port()}"
    start = time.perf_counter()
    with pytest.raises(TrackingError, match=f"MLflow tracking server {uri} does not answer") as caught:
        check_server(uri, timeout_s=5.0)
    assert time.perf_counter() - start < 5.0  # refused: no waiting for the timeout
    assert "\n" not in str(caught.value) and "refused" in str(caught.value).lower()


def test_check_server_accepts_any_http_answer_and_skips_local_stores(http_404, tmp_path):
    check_server(http_404)  # an error status is an answer: the server is up
    check_server(f"sqlite:///{tmp_path / 'mlflow.db'}")  # a local store is not probed
    check_server("file:///nowhere/mlruns")
    with pytest.raises(ValueError, match="timeout_s"):
        check_server(http_404, timeout_s=0)


def test_messages_never_show_a_password():
    assert shown_uri("https://alice:s3cret@mlflow.example.org:8443/x") == "https://alice@mlflow.example.org:8443/x"
    assert shown_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    with pytest.raises(TrackingError) as caught:
        check_server(f"http://alice:s3cret@127.0.0.1:{closed_port()}")
    assert "s3cret" not in str(caught.value) and "alice@127.0.0.1" in str(caught.value)


def test_a_server_that_stops_answering_is_one_tracking_error(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = f"http://127.0.0.1:{closed_port()}"
    tracker = Tracker(MlflowClient(tracking_uri=uri), "0" * 32)
    for call in (
        lambda: tracker.log_metrics({"loss": 0.5}, step=1),
        lambda: tracker.log_params({"a": "1"}),
        lambda: tracker.finish("FAILED"),
    ):
        with pytest.raises(TrackingError, match=f"server {uri} does not answer .*run 0{{32}}"):
            call()
    context = TrackingContext(uri=uri)
    with pytest.raises(TrackingError, match=uri):
        Tracker.attach(context, "0" * 32)  # not taken for a run the store lost
    with pytest.raises(TrackingError, match=uri):
        Tracker.create(context, "exp", "run-1", {})
