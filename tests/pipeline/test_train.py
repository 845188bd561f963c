import copy

import torch

from bratseg.cache import PreprocessedCohort
from bratseg.config import deep_merge, parse_params
from bratseg.labels import BRATS_2021, BRATS_2024
from bratseg.models.checkpoint import save_checkpoint
from bratseg.pipeline.train import code_hash, model_meta, resumable_state, training_fingerprint


def write_data(cache, manifest="case_id\nA\n"):
    cache.mkdir(exist_ok=True)
    (cache / "manifest.csv").write_text(manifest)
    (cache / "splits.json").write_text('{"train": ["A"]}')
    fingerprint = '{"labels": {"name": "brats2021"}, "target_spacing_mm": [2, 2, 2]}'
    (cache / "fingerprint.json").write_text(fingerprint)
    files = ("cases", "splits.json", "manifest.csv", "fingerprint.json")
    return PreprocessedCohort(*(cache / f for f in files))


def test_fingerprint_follows_training_params_data_and_not_other_sections(tmp_path, raw_params, schema):
    cohort = write_data(tmp_path)
    base = parse_params(raw_params, schema)
    fp = training_fingerprint(base, cohort)
    assert fp == training_fingerprint(parse_params(copy.deepcopy(raw_params), schema), cohort)
    other_lr = parse_params(deep_merge(raw_params, {"train": {"lr": 0.1}}), schema)
    other_eval = parse_params(deep_merge(raw_params, {"inference": {"overlap": 0.3}}), schema)
    assert training_fingerprint(other_lr, cohort) != fp
    assert training_fingerprint(other_eval, cohort) == fp
    write_data(tmp_path, "case_id\nB\n")
    assert training_fingerprint(base, cohort) != fp
    assert len(code_hash()) == 16


def test_only_an_incomplete_matching_checkpoint_is_resumed(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    save_checkpoint(models / "last.pt", {"fingerprint": "abc", "complete": False, "epoch": 2})
    (models / "best.pt").write_bytes(b"x")
    assert resumable_state(models, "abc")["epoch"] == 2
    assert (models / "best.pt").exists()
    # other parameters: everything goes
    assert resumable_state(models, "other") is None
    assert list(models.iterdir()) == []
    # a finished run (e.g. dvc repro -f) starts from scratch
    save_checkpoint(models / "last.pt", {"fingerprint": "abc", "complete": True, "epoch": 5})
    assert resumable_state(models, "abc") is None and list(models.iterdir()) == []
    assert resumable_state(tmp_path / "new", "abc") is None and (tmp_path / "new").is_dir()


def test_model_meta_is_plain_data_for_weights_only_loading(tmp_path, raw_params, schema):
    meta = model_meta(parse_params(raw_params, schema), BRATS_2021, [2.0, 2.0, 2.0])
    save_checkpoint(tmp_path / "m.pt", {"meta": meta})
    assert torch.load(tmp_path / "m.pt", weights_only=True)["meta"] == meta
    assert meta["out_channels"] == 3 and meta["modalities"] == ["t1", "t1ce", "t2", "flair"]
    assert meta["labels"] == "brats2021" and meta["target_spacing_mm"] == [2.0, 2.0, 2.0]
    with_rc = model_meta(parse_params(raw_params, schema), BRATS_2024, None)
    assert with_rc["out_channels"] == 4 and with_rc["target_spacing_mm"] is None  # WT, TC, ET and RC
