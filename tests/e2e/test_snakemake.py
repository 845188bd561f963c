"""Snakemake preprocessing on the tiny profile: outputs, incremental re-runs, faults."""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from bratseg.labels import BRATS_2021

pytestmark = pytest.mark.e2e
CACHE = Path("data/preprocessed")


def set_params(project: Path, **changes: object) -> None:
    """Set dotted keys in the project's params.yaml (``train__epochs=3`` → train.epochs)."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        keys = dotted.split("__")
        node = params
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's job-stats table from a dry run."""
    counts: dict[str, int] = {}
    for line in output.splitlines():
        m = re.match(r"^\s*([A-Za-z_]+)\s+(\d+)\s*$", line)
        if m and m.group(1) not in ("total", "job", "count"):
            counts[m.group(1)] = int(m.group(2))
    return counts


def digests(project: Path) -> dict[str, str]:
    """SHA-256 of every cached array and of the manifest/split."""
    files = sorted((project / CACHE).rglob("*.npy")) + sorted((project / CACHE).rglob("*.npz"))
    files += [project / CACHE / "manifest.csv", project / CACHE / "splits.json"]
    return {str(f.relative_to(project)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_snakemake_builds_the_cached_cohort(project, run):
    run("snakemake", "--cores", "2")
    manifest = pd.read_csv(project / CACHE / "manifest.csv")
    assert len(manifest) == 6
    split = json.loads((project / CACHE / "splits.json").read_text())
    assert sorted(
        functools.reduce(operator.iadd, (split[k] for k in ("train", "val", "test")), [])
    ) == sorted(manifest["case_id"])
    assert len(split["test"]) >= 1 and len(split["val"]) >= 1
    for case_id in manifest["case_id"]:
        case = project / CACHE / "cases" / case_id
        image = np.load(case / "image.npy", mmap_mode="r")
        label = np.load(case / "label.npy")
        assert image.shape[0] == 4 and image.shape[1:] == label.shape
        assert np.isfinite(image).all()
        raw = project / "data/raw/synthetic" / case_id / f"{case_id}_seg.nii.gz"
        ref = BRATS_2021.to_classes(np.asarray(nib.load(raw).dataobj))
        # cropping to the brain keeps every tumour voxel
        assert int((label > 0).sum()) == int((ref > 0).sum())
        props = json.loads((case / "properties.json").read_text())
        assert props["case_id"] == case_id
        locations = np.load(case / "locations.npz")
        for cls in ("1", "2", "3"):
            pts = locations[cls]
            assert (label[tuple(pts.T)] == int(cls)).all()
    assert not (project / "data/interim").exists() or not any((project / "data/interim").rglob("*.npz"))
    assert (project / "logs/preprocess").is_dir()
    first = project / CACHE / "cases" / manifest["case_id"][0]
    regions = BRATS_2021.region_masks(np.load(first / "label.npy"))
    assert regions.shape[0] == 3


def test_adding_a_case_processes_only_that_case(project, run):
    before = {c.name: c.stat().st_mtime_ns for c in (project / CACHE / "cases").iterdir()}
    set_params(project, cohort__n_cases=7)
    dry = run("snakemake", "--cores", "2", "--dry-run")
    counts = job_counts(dry.stdout)
    assert counts.get("synthesize_case") == 1 and counts.get("ingest") == 1, dry.stdout
    assert counts.get("finalise") == 1 and counts.get("manifest") == 1, dry.stdout
    run("snakemake", "--cores", "2")
    after = {c.name: c.stat().st_mtime_ns for c in (project / CACHE / "cases").iterdir()}
    assert set(after) - set(before) == {"BraTS2021_00006"}
    assert all(after[c] == before[c] for c in before)
    assert len(pd.read_csv(project / CACHE / "manifest.csv")) == 7


def test_changed_param_reprocesses_what_it_affects_and_leaves_no_stale_array(project, run):
    old = digests(project)
    set_params(project, preprocess__normalise__clip_percentiles=[1.0, 99.0])
    counts = job_counts(run("snakemake", "--cores", "2", "--dry-run").stdout)
    assert counts.get("finalise") == 7 and "synthesize_case" not in counts, counts
    run("snakemake", "--cores", "2")
    new = digests(project)
    images = [k for k in old if k.endswith("image.npy")]
    assert len(images) == 7 and all(old[k] != new[k] for k in images)  # every array was rebuilt
    labels = [k for k in old if k.endswith("label.npy")]
    assert all(old[k] == new[k] for k in labels)  # labels do not depend on normalisation


def test_changed_step_code_reruns_that_step(project, run):
    module = project / "src/bratseg/spatial/crop.py"
    original = module.read_bytes()
    try:
        time.sleep(0.01)
        module.write_bytes(original + b"\n")
        counts = job_counts(run("snakemake", "--cores", "2", "--dry-run").stdout)
        assert counts.get("finalise") == 7 and "synthesize_case" not in counts, counts
    finally:
        module.write_bytes(original)
    run("snakemake", "--cores", "2", "--touch", "--quiet")  # code restored: accept the existing outputs


def test_killed_snakemake_reruns_to_the_same_outputs(project, run, env):
    reference = digests(project)
    shutil.rmtree(project / CACHE)
    proc = subprocess.Popen(
        ["snakemake", "--cores", "1"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    cases = project / CACHE / "cases"
    while time.time() < deadline and proc.poll() is None:
        if cases.is_dir() and len([p for p in cases.iterdir() if not p.name.startswith(".")]) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "snakemake finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (project / CACHE / "manifest.csv").exists()
    run("snakemake", "--cores", "2")  # no --unlock needed: the default profile copes with a killed run
    assert digests(project) == reference


def test_corrupt_case_is_named_and_the_others_finish(project, run, tmp_path):
    user_dir = tmp_path / "BraTS2021"
    shutil.copytree(project / "data/raw/synthetic", user_dir)
    bad = user_dir / "BraTS2021_00002" / "BraTS2021_00002_t1ce.nii.gz"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 3])
    set_params(project, data__raw_dir=str(user_dir))
    shutil.rmtree(project / CACHE)
    proc = run("snakemake", "--cores", "2", "--keep-going", check=False)
    assert proc.returncode != 0
    expected = f"error: BraTS2021_00002: {bad}: corrupt or truncated gzip data"
    assert expected in proc.stderr, proc.stderr[-3000:]
    done = sorted(p.name for p in (project / CACHE / "cases").iterdir())
    assert done == [f"BraTS2021_{i:05d}" for i in range(7) if i != 2]
    assert not (project / "data/interim/BraTS2021_00002").exists() or not any(
        (project / "data/interim/BraTS2021_00002").iterdir()
    )
    set_params(project, data__raw_dir="data/raw/synthetic")
