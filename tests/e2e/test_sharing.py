"""Sharing results through a DVC remote: a teammate's fresh clone pulls the cached arrays, models and metrics,
and `dvc repro` then has nothing to rerun; an experiment travels the same way with `dvc exp push/pull`.

The remote is a local folder (any DVC remote works the same: s3, ssh, a network share); the git remote is a
bare repository beside it.
"""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.e2e
SHARED = ("data", "models", "reports")  # everything the pipeline writes (DVC-cached or git-tracked)
UP_TO_DATE = "Data and pipelines are up to date."
EXPERIMENT = "more-figures"


def assert_nothing_ran(out: str) -> None:
    assert UP_TO_DATE in out, out
    assert "Running stage" not in out, out


@pytest.fixture(scope="module")
def shared(tiny_repro, tmp_path_factory, source_run):
    """Alice's copy of the reference run, its outputs pushed to the DVC remote and its commits to git."""
    base = tmp_path_factory.mktemp("sharing")
    alice, remote, origin = base / "alice", base / "dvc-remote", base / "origin.git"
    shutil.copytree(tiny_repro, alice, symlinks=True)
    run = source_run(alice)
    run("git", "init", "-q", "--bare", "-b", "main", str(origin))
    run("git", "remote", "add", "origin", str(origin))
    run("dvc", "remote", "add", "--default", "team", str(remote))
    run("git", "commit", "-q", "-m", "the team's DVC remote", ".dvc/config")
    run("git", "push", "-q", "origin", "main")
    pushed = run("dvc", "push")
    return {"alice": alice, "remote": remote, "origin": origin, "base": base, "pushed": pushed.stdout}


def test_pull_in_a_fresh_clone_then_repro_has_nothing_to_rerun(shared, source_run, digests_of):
    assert "pushed" in shared["pushed"], shared["pushed"]
    bob = shared["base"] / "bob"
    source_run(shared["base"])("git", "clone", "-q", str(shared["origin"]), str(bob))
    run = source_run(bob)
    assert not (bob / "models").exists() and not (bob / "data/preprocessed/cases").exists()
    run("dvc", "pull")
    assert run("dvc", "status").stdout.strip() == UP_TO_DATE
    assert_nothing_ran(run("dvc", "repro").stdout)
    assert digests_of(bob, *SHARED) == digests_of(shared["alice"], *SHARED)  # arrays, models, metrics
    assert not (bob / "mlflow.db").exists() and not (bob / "logs").exists()  # no stage ran


def test_an_experiment_travels_with_exp_push_and_pull(shared, source_run, digests_of):
    alice = source_run(shared["alice"])
    ran = alice("dvc", "exp", "run", "-S", "report.n_figures=2", "-n", EXPERIMENT).stdout
    assert "Running stage 'report'" in ran and "Running stage 'train@fold0'" not in ran, ran
    alice("dvc", "exp", "push", "origin", EXPERIMENT)

    carol = shared["base"] / "carol"
    source_run(shared["base"])("git", "clone", "-q", str(shared["origin"]), str(carol))
    run = source_run(carol)
    assert EXPERIMENT not in run("dvc", "exp", "list", "--all-commits").stdout
    run("dvc", "exp", "pull", "origin", EXPERIMENT)
    shown = json.loads(run("dvc", "exp", "show", "--json").stdout)
    names = {e.get("name") for entry in shown for exp in entry.get("experiments") or [] for e in exp["revs"]}
    assert EXPERIMENT in names, shown
    run("dvc", "exp", "apply", EXPERIMENT)  # its params, lock file and outputs, from the pulled cache
    assert run("dvc", "status").stdout.strip() == UP_TO_DATE
    assert_nothing_ran(run("dvc", "repro").stdout)
    assert digests_of(carol, *SHARED) == digests_of(shared["alice"], *SHARED)
    params = (carol / "params.yaml").read_text()
    assert "n_figures: 2" in params
    assert not (carol / "logs").exists()
