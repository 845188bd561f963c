"""Preprocessing through Snakemake's executor plugins, checked against the local run of the same tiny cohort.

- ``--executor cluster-generic`` (profiles/cluster-generic): scripts/cluster/submit.sh starts every job
  script as its own detached process in a new session; status.sh and cancel.sh answer for it.
- ``--shared-fs-usage none`` with the ``fs`` storage plugin as default storage provider, every job in a fresh
  empty folder: a job sees only the deployed workflow sources and the files its rule declares, so a rule that
  reads or writes anything it does not declare fails or loses it.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ("data/raw/synthetic", "data/preprocessed")
PER_CASE = ("synthesize_case", "ingest", "bias_correct", "finalise")
SUBMITTED = re.compile(r"Submitted job (\d+) with external jobid '([^']+)'")


@pytest.fixture(scope="module")
def reference(tiny_repro: Path, digests_of) -> dict[str, str]:
    """Digests of the local run's raw cohort, cached cases, manifest and split."""
    return digests_of(tiny_repro, *OUTPUTS)


def job_records(spool: Path, log: str) -> list[dict]:
    """What submit.sh recorded of each job Snakemake says it submitted."""
    ids = [jobid for _, jobid in SUBMITTED.findall(log)]
    records = []
    for jobid in ids:
        record = spool / jobid
        script = (record / "job.sh").read_text()
        properties = next(line for line in script.splitlines() if line.startswith("# properties = "))
        pid, _ppid, pgid, sid = (int(v) for v in (record / "proc").read_text().split())
        records.append(
            {
                "id": jobid,
                "rule": json.loads(properties.removeprefix("# properties = "))["rule"],
                "pid_file": int((record / "pid").read_text()),
                "pid": pid,
                "pgid": pgid,
                "sid": sid,
                "exit": (record / "exit").read_text().strip(),
                "workdir": (record / "workdir").read_text().strip(),
                "script": script,
            }
        )
    return records


def check_detached(records: list[dict], rules: dict[str, int]) -> None:
    """Every job ran as the leader of a session of its own, none in the session of Snakemake (the tests')."""
    assert collections.Counter(r["rule"] for r in records) == rules
    for r in records:
        assert r["exit"] == "0", r
        assert r["pid"] == r["pid_file"] == r["pgid"] == r["sid"], r  # its own session and process group
        assert "-m snakemake" in r["script"] and "--mode 'remote'" in r["script"], r["script"]
    assert len({r["sid"] for r in records}) == len(records)
    assert os.getsid(0) not in {r["sid"] for r in records}


def test_submit_status_cancel_scripts(tmp_path):
    """The three commands on their own: success, failure, a job killed behind Snakemake's back, a cancel."""
    scripts = ROOT / "scripts" / "cluster"
    env = {**os.environ, "BRATSEG_CLUSTER_SPOOL": str(tmp_path / "spool")}

    def sh(*cmd: str) -> str:
        done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=30)
        return done.stdout.strip()

    def submit(body: str) -> str:
        script = tmp_path / f"job{len(list(tmp_path.glob('job*.sh')))}.sh"
        script.write_text(f"#!/bin/sh\n{body}\n")
        return sh(str(scripts / "submit.sh"), str(script))

    def wait_status(jobid: str, expected: str) -> None:
        deadline = time.time() + 20
        while (status := sh(str(scripts / "status.sh"), jobid)) != expected and time.time() < deadline:
            time.sleep(0.05)
        assert status == expected, (jobid, status)

    ok, bad, slow, killed = submit("true"), submit("exit 3"), submit("sleep 60"), submit("sleep 60")
    wait_status(ok, "success")
    wait_status(bad, "failed")
    assert sh(str(scripts / "status.sh"), slow) == "running"
    sh(str(scripts / "cancel.sh"), slow)
    wait_status(slow, "failed")
    deadline = time.time() + 10  # cancel ended the whole process group, the sleep too
    while _group_alive(int((tmp_path / "spool" / slow / "pid").read_text())) and time.time() < deadline:
        time.sleep(0.05)
    assert not _group_alive(int((tmp_path / "spool" / slow / "pid").read_text()))
    os.killpg(int((tmp_path / "spool" / killed / "pid").read_text()), 9)  # a lost node: no exit file, ever
    wait_status(killed, "failed")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cluster_generic_runs_every_job_as_its_own_detached_process(
    tiny_repro, reference, tmp_path, new_project, source_run, digests_of
):
    project = new_project(tmp_path / "project")
    # the cohort of the local run: this run preprocesses it (its mtimes kept, so it is not regenerated)
    shutil.copytree(tiny_repro / "data/raw/synthetic", project / "data/raw/synthetic")
    spool = tmp_path / "spool"
    run = source_run(project, BRATSEG_CLUSTER_SPOOL=str(spool))
    start = time.perf_counter()
    out = run("snakemake", "--profile", "profiles/cluster-generic")
    seconds = time.perf_counter() - start
    log = out.stdout + out.stderr
    records = job_records(spool, log)
    check_detached(records, {rule: 6 for rule in PER_CASE if rule != "synthesize_case"})
    assert all(r["workdir"] == str(project) for r in records)  # a shared filesystem: the project folder
    assert "localrule manifest:" in log  # aggregation and the manifest stay in Snakemake's process
    assert digests_of(project, *OUTPUTS) == reference
    print(f"cluster-generic: {len(records)} jobs in {seconds:.1f} s")


def test_no_shared_filesystem_with_fs_storage_matches_the_local_run(
    reference, tmp_path, new_project, source_run, digests_of
):
    """Every job in a fresh empty folder, every file through the storage: rules declare all they touch."""
    if shutil.which("rsync") is None:  # the fs storage plugin copies with it
        pytest.fail("rsync is missing: run scripts/cluster/ensure_rsync.sh (make test does)")
    project = new_project(tmp_path / "project")
    storage, spool, scratch = tmp_path / "storage", tmp_path / "spool", tmp_path / "scratch"
    scratch.mkdir()
    run = source_run(project, BRATSEG_CLUSTER_SPOOL=str(spool), TMPDIR=str(scratch))
    start = time.perf_counter()
    out = run(
        "snakemake",
        "--profile",
        "profiles/cluster-generic",
        "--cluster-generic-submit-cmd",
        "scripts/cluster/submit.sh --fresh-workdir",
        "--shared-fs-usage",
        "none",
        "--job-deploy-sources",
        "--default-storage-provider",
        "fs",
        "--default-storage-prefix",
        str(storage),
    )
    seconds = time.perf_counter() - start
    log = out.stdout + out.stderr
    assert "Uploading source archive to storage provider" in log
    records = job_records(spool, log)
    check_detached(records, {rule: 6 for rule in PER_CASE})
    workdirs = {Path(r["workdir"]) for r in records}
    assert len(workdirs) == len(records) and all(w.parent == scratch for w in workdirs)
    assert not any(w.exists() for w in workdirs)  # each job's folder was its own, and is gone
    written = [p for p in (project / "data").rglob("*") if p.is_file() and p.name != ".gitignore"]
    assert written == []  # nothing reached the project folder but through the storage
    assert digests_of(storage, *OUTPUTS) == reference
    print(f"no shared filesystem: {len(records)} jobs in {seconds:.1f} s")


def resources_by_rule(dry_run: str) -> dict[str, dict[str, str]]:
    """The ``resources:`` of one job per rule, from a dry run's job listing."""
    found: dict[str, dict[str, str]] = {}
    rule = None
    for line in dry_run.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = m.group(1)
        elif (m := re.match(r"^\s+resources: (.*)$", line)) and rule is not None:
            found.setdefault(rule, dict(item.split("=", 1) for item in m.group(1).split(", ")))
    return found


def test_slurm_profile_asks_for_what_each_rule_declares(tmp_path, new_project, source_run):
    """A dry run through profiles/slurm (no SLURM needed): per-case jobs keep the rules' measured memory and
    time, on one CPU each; the profile's options are all valid."""
    project = new_project(tmp_path / "project")
    run = source_run(project)
    local = resources_by_rule(run("snakemake", "--dry-run").stdout)
    slurm = resources_by_rule(run("snakemake", "--profile", "profiles/slurm", "--dry-run").stdout)
    for rule in PER_CASE:
        assert slurm[rule]["mem_mb"] == local[rule]["mem_mb"] and int(local[rule]["mem_mb"]) > 0, rule
        assert slurm[rule]["runtime"] == local[rule]["runtime"] and int(local[rule]["runtime"]) > 0, rule
        assert slurm[rule]["cpus_per_task"] == "1", slurm[rule]
