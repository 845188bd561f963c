"""The Snakemake-facing steps end to end on tiny cases, and their all-or-nothing outputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bratseg.cache import open_case
from bratseg.errors import CaseError, ConfigError
from bratseg.labels import BRATS_2021
from bratseg.layouts import MODALITIES
from bratseg.preprocess.steps.bias_correct import bias_correct
from bratseg.preprocess.steps.finalise import finalise
from bratseg.preprocess.steps.ingest import ingest
from bratseg.preprocess.steps.interim import read_npz
from bratseg.preprocess.steps.manifest import ManifestFiles, write_manifest
from bratseg.spatial.crop import as_bbox, uncrop

CASE = "BraTS2021_00001"


def _run(tmp_path, files, params, seed=0):
    interim = tmp_path / "interim" / files.case_id
    ingest(files, interim / "ingested.npz")
    bias_correct(interim / "ingested.npz", interim / "n4.npz", params.n4, threads=1)
    out = tmp_path / "preprocessed" / "cases" / files.case_id
    finalise(interim / "n4.npz", out, params, seed)
    return out


def _without_n4(params):
    return dataclasses.replace(params, n4=dataclasses.replace(params.n4, enabled=False))


def test_end_to_end(tmp_path, write_case, make_phantom, preprocess_params):
    ph = make_phantom(bias=0.2, seed=4)
    files = write_case(tmp_path / "raw", CASE, ph)
    out = _run(tmp_path, files, preprocess_params)

    arrays, meta = read_npz(tmp_path / "interim" / CASE / "n4.npz")
    assert set(arrays) == {"image", "mask", "classes"} and meta["has_label"]
    assert set(meta["n4"]["modalities"]) == set(MODALITIES)
    assert all(m["seconds"] >= 0 and len(m["fitted_shape"]) == 3 for m in meta["n4"]["modalities"].values())

    case = open_case(out)
    props = case.properties
    assert case.case_id == CASE and props["has_label"] and props["geometry"]["shape"] == list(ph.seg.shape)
    bbox = as_bbox(props["bbox"])
    image = np.asarray(case.image())
    assert image.dtype == np.float32 and list(image.shape) == [4, *props["cropped_shape"]]
    full = uncrop(image, bbox, ph.seg.shape)
    assert np.all(full[:, ~ph.brain] == 0)
    for i in range(4):
        inside = full[i][ph.brain]
        assert abs(inside.mean()) < 0.05 and abs(inside.std() - 1) < 0.1
    label = uncrop(np.asarray(case.label()), bbox, ph.seg.shape)
    np.testing.assert_array_equal(label, BRATS_2021.to_classes(ph.seg))
    locations = case.locations()
    for cls in (1, 2, 3):
        assert 0 < len(locations[cls]) <= 50
        assert np.all(np.asarray(case.label())[tuple(locations[cls].T)] == cls)
    assert props["volumes_ml"]["WT"] == pytest.approx((ph.seg > 0).sum() * 8 / 1000)
    assert props["class_voxels"]["ET"] == int((ph.seg == 4).sum())
    assert set(props["normalisation"]) == set(MODALITIES)
    assert "seconds" not in json.dumps(props["n4"]) and props["n4"]["modalities"]["t1"]["enabled"]
    assert props["sources"]["seg"] == str(files.seg)


def test_finalise_is_reproducible(tmp_path, write_case, preprocess_params):
    files = write_case(tmp_path / "raw", CASE)
    first = _run(tmp_path / "a", files, preprocess_params)
    second = _run(tmp_path / "b", files, preprocess_params)
    for name in ("image.npy", "label.npy", "locations.npz", "properties.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_float16_cache_and_unlabelled_case(tmp_path, write_case, preprocess_params):
    params = dataclasses.replace(
        preprocess_params, cache=dataclasses.replace(preprocess_params.cache, dtype="float16")
    )
    files = write_case(tmp_path / "raw", CASE, with_seg=False)
    case = open_case(_run(tmp_path, files, params))
    assert case.image().dtype == np.float16 and case.label() is None and not case.has_label
    assert all(len(v) == 0 for v in case.locations().values())


def _listing(path):
    """The files under ``path`` (folders left out)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_failing_ingest_leaves_nothing(tmp_path, write_case, make_phantom):
    ph = make_phantom()
    bad = ph.seg.copy()
    bad[ph.seg == 4] = 5
    files = write_case(tmp_path / "raw", CASE, ph, arrays={"seg": bad})
    out = tmp_path / "interim" / CASE / "ingested.npz"
    with pytest.raises(CaseError, match=CASE):
        ingest(files, out)
    assert not out.exists() and _listing(tmp_path / "interim") == []


def test_ingest_records_the_files_under_their_workflow_names(tmp_path, write_case, make_phantom):
    """A job without a shared filesystem reads storage copies; the cache must name the workflow's files,
    which need not exist where the job runs."""
    ph = make_phantom(seed=2)
    named = write_case(tmp_path / "raw", CASE, ph)
    copies = write_case(tmp_path / "storage-copy" / "raw", CASE, ph)
    ingest(named, tmp_path / "a.npz")
    elsewhere = tmp_path / "not-here" / CASE
    workflow_view = dataclasses.replace(
        named, images={m: elsewhere / p.name for m, p in named.images.items()}, seg=elsewhere / named.seg.name
    )
    ingest(copies, tmp_path / "b.npz", named=workflow_view)
    (a_arrays, a_meta), (b_arrays, b_meta) = read_npz(tmp_path / "a.npz"), read_npz(tmp_path / "b.npz")
    assert b_meta["sources"] == {k: str(elsewhere / Path(v).name) for k, v in a_meta["sources"].items()}
    assert set(b_meta["sources"]) == {*MODALITIES, "seg"}
    rest = lambda meta: {k: v for k, v in meta.items() if k != "sources"}  # noqa: E731
    assert rest(b_meta) == rest(a_meta)
    assert all(np.array_equal(a_arrays[k], b_arrays[k]) for k in a_arrays)
    # the workflow's view relocated onto the job's copies is the copies' case
    relocated = named.relocated([*copies.images.values(), copies.seg])
    assert relocated.images == copies.images and relocated.seg == copies.seg
    ingest(relocated, tmp_path / "c.npz", named=named)
    assert read_npz(tmp_path / "c.npz")[1] == a_meta
    other = dataclasses.replace(named, case_id="BraTS2021_00002")
    with pytest.raises(ValueError, match=r"named: case BraTS2021_00002 is not case BraTS2021_00001"):
        ingest(copies, tmp_path / "d.npz", named=other)
    assert not (tmp_path / "d.npz").exists()


def test_failing_finalise_leaves_nothing(tmp_path, write_case, make_phantom, preprocess_params):
    ph = make_phantom()
    constant = np.where(ph.brain, 500, 0).astype(np.int16)  # a flat modality cannot be z-scored
    files = write_case(tmp_path / "raw", CASE, ph, arrays={"t2": constant})
    with pytest.raises(CaseError, match="normalisation") as info:
        _run(tmp_path, files, _without_n4(preprocess_params))
    assert str(files.images["t2"]) in str(info.value)
    assert _listing(tmp_path / "preprocessed") == []


def test_failing_bias_correct_leaves_nothing(tmp_path, write_case, preprocess_params):
    files = write_case(tmp_path / "raw", CASE)
    interim = tmp_path / "interim"
    ingest(files, interim / "ingested.npz")
    bad = dataclasses.replace(preprocess_params.n4, control_points=2)
    with pytest.raises(CaseError, match="N4"):
        bias_correct(interim / "ingested.npz", interim / "n4.npz", bad, threads=1)
    assert _listing(interim) == ["ingested.npz"]


def test_write_manifest(tmp_path, write_case, make_phantom, preprocess_params, split_params):
    params = _without_n4(preprocess_params)
    dirs = []
    for i in range(4):
        files = write_case(tmp_path / "raw", f"BraTS2021_{i:05d}", make_phantom(seed=i), with_seg=i != 3)
        dirs.append(_run(tmp_path, files, params))
    root = tmp_path / "preprocessed"
    names = ("manifest.csv", "manifest.parquet", "splits.json", "fp.json")
    files = ManifestFiles(*(root / n for n in names))
    write_manifest(dirs, files, split_params)
    split = json.loads((root / "splits.json").read_text())
    assert split["unlabelled"] == ["BraTS2021_00003"]
    assert sorted(split["train"] + split["val"] + split["test"]) == [f"BraTS2021_{i:05d}" for i in range(3)]
    csv = pd.read_csv(root / "manifest.csv")
    parquet = pd.read_parquet(root / "manifest.parquet")
    assert list(csv["case_id"]) == list(parquet["case_id"]) == [f"BraTS2021_{i:05d}" for i in range(4)]
    assert list(csv["has_label"]) == [True, True, True, False]
    assert csv.loc[0, "shape_x"] == 23 and csv.loc[0, "volume_ml_WT"] > 0
    assert {"t1_raw_mean", "flair_clip_high", "cropped_z", "bbox_x0", "voxels_ET"} <= set(csv.columns)
    fingerprint = json.loads((root / "fp.json").read_text())
    assert fingerprint["labels"]["name"] == "brats2021" and fingerprint["n_labelled"] == 3
    assert fingerprint["median_spacing_mm"] == [2.0, 2.0, 2.0] and fingerprint["orientations"] == {"RAS": 4}
    assert set(fingerprint["cases"]["BraTS2021_00000"]["intensity"]) == {"t1", "t1ce", "t2", "flair"}
    assert 0 < fingerprint["class_frequency"]["SNFH"] < 1


def test_write_manifest_failure_writes_nothing(tmp_path, write_case, preprocess_params, split_params):
    params = _without_n4(preprocess_params)
    dirs = [_run(tmp_path, write_case(tmp_path / "raw", f"BraTS2021_{i:05d}"), params) for i in range(2)]
    root = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"^split: .*at least 3.* \(2 labelled of 2 cases\)$"):
        files = ManifestFiles(root / "m.csv", root / "m.parquet", root / "s.json", root / "f.json")
        write_manifest(dirs, files, split_params)
    assert _listing(root) == []
