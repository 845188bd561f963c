"""The tiny pipeline logging to a real ``mlflow server`` (sqlite backend, served artifacts) on 127.0.0.1,
and a dead tracking server: the stage ends at once with one line naming it, before any training."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the IPv4/IPv6 sockets listening on ``port`` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server`` on 127.0.0.1, a sqlite backend and its own artifact store (``--serve-artifacts``)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'backend.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        cwd=root,
        env={  # no background job runners: the pipeline logs runs, metrics and artifacts only
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise AssertionError(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
        time.sleep(0.25)
    yield {"uri": uri, "port": port, "root": root}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


@pytest.fixture(scope="module")
def project(tiny_repro, tmp_path_factory):
    """A copy of the reference run without its models: preprocessed data ready, nothing trained."""
    project = tmp_path_factory.mktemp("server-project") / "p"
    shutil.copytree(tiny_repro, project, symlinks=True)
    shutil.rmtree(project / "models")
    return project


def stage(project: Path, name: str) -> list[str]:
    import shlex

    import yaml

    stage_name, _, item = name.partition("@")  # a foreach stage: train@fold0
    body = yaml.safe_load((project / "dvc.yaml").read_text())["stages"][stage_name]
    return shlex.split(body["do"]["cmd"].replace("${item}", item) if item else body["cmd"])


def test_server_binds_loopback_only(server):
    addresses = listening_addresses(server["port"])
    assert addresses and addresses <= {"0100007F"}, addresses  # 127.0.0.1 in /proc/net/tcp's byte order


def test_train_and_evaluate_log_to_the_server(server, project, source_run):
    from mlflow.tracking import MlflowClient

    run = source_run(project, MLFLOW_TRACKING_URI=server["uri"])
    local_runs_before = (project / "mlflow.db").read_bytes()
    for name in ("train@fold0", "cv_predict@fold0", "crossval", "evaluate"):
        run(*stage(project, name))
    assert (project / "mlflow.db").read_bytes() == local_runs_before  # nothing went to the local store

    import json

    import yaml

    run_id = json.loads((project / "models/fold0/run.json").read_text())["run_id"]
    experiment = yaml.safe_load((project / "params.yaml").read_text())["tracking"]["experiment"]
    client = MlflowClient(tracking_uri=server["uri"])
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None and exp.artifact_location.startswith("mlflow-artifacts:")  # the server's store
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params["model"] == "unet" and got.data.params["train.epochs"] == "2"
    assert {"train_loss", "val_dice_WT", "best_val_dice_mean", "test_dice_WT_mean"} <= set(got.data.metrics)
    metrics = json.loads((project / "reports/eval/metrics.json").read_text())
    assert got.data.metrics["test_dice_WT_mean"] == pytest.approx(metrics["dice"]["WT"]["mean"])
    history = client.get_metric_history(run_id, "train_loss")
    assert sorted(m.step for m in history) == [1, 2]
    names = {a.path for a in client.list_artifacts(run_id, "model")}
    assert "model/best.pt" in names
    fetched = Path(client.download_artifacts(run_id, "model/best.pt", str(project.parent)))
    assert fetched.read_bytes() == (project / "models/fold0/best.pt").read_bytes()
    stored = list((server["root"] / "artifacts").rglob("best.pt"))
    assert len(stored) == 1 and stored[0].read_bytes() == fetched.read_bytes()  # in the served store


@pytest.mark.parametrize("name", ["train@fold0", "evaluate"])
def test_a_dead_server_ends_the_stage_at_once_with_one_line(project, source_run, name, tmp_path):
    """Nothing listens at the URI: exit 1, one ``error:`` line naming it, before any model is written."""
    work = tmp_path / "p"
    shutil.copytree(project, work, symlinks=True)
    for output in ("models", "data/predictions"):
        shutil.rmtree(work / output)
    uri = f"http://127.0.0.1:{free_port()}"
    run = source_run(work, MLFLOW_TRACKING_URI=uri)
    start = time.perf_counter()
    proc = run(*stage(work, name), check=False)
    seconds = time.perf_counter() - start
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1, proc.stderr[-3000:]
    expected = f"error: MLflow tracking server {uri} does not answer ("
    assert len(errors) == 1 and errors[0].startswith(expected), errors
    assert "refused" in errors[0].lower() and errors[0] == proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr
    assert not list(work.glob("models/**/*.pt")) and not (work / "data/predictions").exists()
    assert seconds < 60, seconds  # interpreter and imports; no retries, no training
    print(f"dead server, {name}: exit 1 after {seconds:.1f} s")
