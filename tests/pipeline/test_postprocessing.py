"""The models folder: which checkpoints ``--model`` names, and the post-processing chosen for them."""

from __future__ import annotations

import logging

import pytest

from bratseg.config import PostprocessParams
from bratseg.errors import ConfigError
from bratseg.inference.postprocess import PostprocessPlan
from bratseg.pipeline.evaluate import pipeline_plan
from bratseg.pipeline.postprocessing import (
    PLAN_FILE,
    find_plan_file,
    plan_for,
    read_plan_file,
    resolve_models,
    sha256,
    write_plan,
)

PARAMS = PostprocessParams(0.5, 0.0, 0, 0, (), 0, True, (0, 10))
PLAN = PostprocessPlan(0.5, 0, ("WT",), 50)


def models(tmp_path, folds=("fold0", "fold1"), plan=True):
    root = tmp_path / "models"
    for i, fold in enumerate(folds):
        (root / fold).mkdir(parents=True)
        (root / fold / "best.pt").write_bytes(f"weights {root} {i}".encode())  # distinct per folder
    if plan:
        record = {"folds": {f: {"sha256": sha256(root / f / "best.pt")} for f in folds}}
        write_plan(root / PLAN_FILE, PLAN, record)
    return root


def test_the_models_folder_is_every_fold_it_chose_for(tmp_path):
    root = models(tmp_path)
    expected = [root / "fold0/best.pt", root / "fold1/best.pt"]
    assert resolve_models([root]) == expected
    assert resolve_models([root / "fold1", root / "fold0/best.pt"]) == [expected[1], expected[0]]
    (root / PLAN_FILE).unlink()
    assert resolve_models([root]) == expected  # no plan: every */best.pt, sorted
    with pytest.raises(ConfigError, match="not found"):
        resolve_models([tmp_path / "nothing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"holds no best\.pt"):
        resolve_models([tmp_path / "empty"])


def test_the_plan_beside_the_checkpoints_is_applied_else_the_params(tmp_path, caplog):
    root = models(tmp_path)
    checkpoints = resolve_models([root])
    assert find_plan_file(checkpoints) == (root / PLAN_FILE).resolve()
    assert plan_for(checkpoints, PARAMS)[0] == PLAN
    other = models(tmp_path / "other", folds=("fold0",), plan=False)
    plan, source = plan_for([other / "fold0/best.pt"], PARAMS)
    assert plan == PostprocessPlan.from_params(PARAMS) and "params postprocess" in source
    with caplog.at_level(logging.WARNING):
        assert plan_for([other / "fold0/best.pt"], PARAMS, root / PLAN_FILE)[0] == PLAN
    assert "chosen for other models" in caplog.text
    (other / PLAN_FILE).write_text("{}")
    with pytest.raises(ConfigError, match="different post-processing files"):
        find_plan_file([checkpoints[0], other / "fold0/best.pt"])
    with pytest.raises(ConfigError, match="not a post-processing file"):
        read_plan_file(other / PLAN_FILE)


def test_the_evaluate_stage_refuses_a_plan_chosen_for_other_weights(tmp_path):
    root = models(tmp_path)
    checkpoints = [root / "fold0/best.pt", root / "fold1/best.pt"]
    assert pipeline_plan(root, checkpoints, ("fold0", "fold1")) == PLAN
    (root / "fold1/best.pt").write_bytes(b"retrained")
    with pytest.raises(ConfigError, match="dvc repro crossval"):
        pipeline_plan(root, checkpoints, ("fold0", "fold1"))
    (root / PLAN_FILE).unlink()
    with pytest.raises(ConfigError, match="run the crossval stage"):
        pipeline_plan(root, checkpoints, ("fold0", "fold1"))
