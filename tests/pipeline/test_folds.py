"""Which cases each fold trains, validates and predicts out of fold on, read from splits.json."""

from __future__ import annotations

import pytest

from bratseg.config import CvParams, fold_names
from bratseg.errors import ConfigError
from bratseg.pipeline.folds import all_folds, fold_of, out_of_fold

SINGLE = {"train": ["a", "b", "c"], "val": ["d"], "test": ["e"]}
TWO = {"train": ["a", "b", "c", "d"], "val": [], "test": ["e"], "fold0": ["a", "c"], "fold1": ["b", "d"]}


def cv(folds: int) -> CvParams:
    return CvParams(folds, fold_names(folds))


def test_one_fold_trains_on_train_and_validates_on_val_but_predicts_nothing_out_of_fold():
    fold = fold_of(SINGLE, cv(1), "fold0")
    assert (fold.train, fold.val) == (("a", "b", "c"), ("d",))
    assert out_of_fold(SINGLE, cv(1), "fold0") == ()  # the default pipeline predicts nothing more


def test_k_folds_train_on_the_other_folds_and_validate_on_their_own():
    folds = all_folds(TWO, cv(2))
    assert [(f.name, f.train, f.val) for f in folds] == [
        ("fold0", ("b", "d"), ("a", "c")),
        ("fold1", ("a", "c"), ("b", "d")),
    ]
    assert out_of_fold(TWO, cv(2), "fold1") == ("b", "d")
    for f in folds:
        assert not set(f.train) & set(f.val) and set(f.train) | set(f.val) == set(TWO["train"])


def test_a_split_written_for_other_folds_or_an_unknown_fold_is_refused():
    with pytest.raises(ConfigError, match="fold2"):
        fold_of(TWO, cv(2), "fold2")
    with pytest.raises(ConfigError, match="dvc repro split"):
        fold_of(SINGLE, cv(2), "fold0")  # the split predates cv.folds = 2
    with pytest.raises(ConfigError, match="dvc repro split"):
        fold_of(TWO, cv(1), "fold0")
    with pytest.raises(ConfigError, match="dvc repro split"):
        fold_of({**TWO, "fold2": []}, cv(2), "fold0")


def test_fold_names():
    assert fold_names(3) == ("fold0", "fold1", "fold2")
    with pytest.raises(ValueError, match="folds"):
        fold_names(0)
