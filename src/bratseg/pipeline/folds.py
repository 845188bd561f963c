"""Which cases each cross-validation fold trains and validates on, read from ``splits.json``.

The split stage writes, for ``cv.folds = k > 1``, the held-out cases of each fold under ``fold0`` ...
``fold<k-1>`` beside ``train`` (every labelled non-test case) and ``test``; for ``k = 1`` the split is the one
train / val / test cut, and its one fold ``fold0`` trains on ``train`` and validates on ``val``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bratseg.config import CvParams
from bratseg.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """One fold: its name and the case ids it trains and validates on (the validation cases are the ones it
    holds out: its out-of-fold cases)."""

    name: str
    train: tuple[str, ...]
    val: tuple[str, ...]


def fold_of(split: Mapping[str, Sequence[str]], cv: CvParams, name: str) -> Fold:
    """The cases of fold ``name`` under ``cv``.

    Args:
        split: the contents of ``splits.json`` (split name -> case ids).
        cv: the ``cv`` section the split must have been written with.
        name: one of ``cv.fold_names``.

    Raises:
        ConfigError: ``name`` is not a fold of ``cv``, or ``split`` was written for another number of folds
            (run the split stage again).
    """
    if name not in cv.fold_names:
        raise ConfigError(f"fold {name!r} is not one of cv.fold_names {list(cv.fold_names)}")
    written = sorted((k for k in split if k.startswith("fold")), key=lambda k: int(k[4:]))
    expected = [] if cv.folds == 1 else list(cv.fold_names)
    if written != expected:
        raise ConfigError(
            f"splits.json holds folds {written or 'none'} but cv.folds is {cv.folds}: run the split stage "
            "again (dvc repro split)"
        )
    if cv.folds == 1:
        return Fold(name, tuple(split["train"]), tuple(split["val"]))
    held = set(split[name])
    return Fold(name, tuple(c for c in split["train"] if c not in held), tuple(split[name]))


def out_of_fold(split: Mapping[str, Sequence[str]], cv: CvParams, name: str) -> tuple[str, ...]:
    """The cases fold ``name`` predicts out of fold: those it holds out with ``cv.folds > 1``, none with one
    fold (no cross-validation: the default pipeline predicts nothing more than the test split).

    Raises:
        ConfigError: as :func:`fold_of`.
    """
    fold = fold_of(split, cv, name)
    return fold.val if cv.folds > 1 else ()


def all_folds(split: Mapping[str, Sequence[str]], cv: CvParams) -> list[Fold]:
    """Every fold of ``cv``, in the order of ``cv.fold_names``."""
    return [fold_of(split, cv, name) for name in cv.fold_names]
