"""The train / val / test split and the cohort manifest.

The split ranks the cases by a keyed hash of ``(seed, case_id)`` and cuts the ranking: the first
``max(1, round(test_fraction * N))`` cases are the test set, the next ``max(1, round(val_fraction * N))`` the
validation set (a zero fraction gives an empty set), the rest the training set. It depends on nothing but the
seed and the ids, and adding a case moves at most one existing case across each of the two cuts.

For k-fold cross-validation (:func:`assign_folds`) each labelled non-test case gets the fold ``h mod k`` of
its own keyed hash ``h`` (the same BLAKE2b keyed with the seed, personalised ``fold``, so it is independent
of the ranking): a case's fold depends on nothing but the seed and its id, so adding cases never moves another
one to another fold. Fold sizes are therefore those of independent draws, not equal counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bratseg.config import SplitParams
from bratseg.labels import BRATS_2021, CANONICAL, LabelSet
from bratseg.layouts import MODALITIES

if TYPE_CHECKING:
    import pandas as pd

SPLITS: tuple[str, ...] = ("train", "val", "test")


def rank_key(seed: int, case_id: str) -> bytes:
    """The keyed hash that orders cases for the split (BLAKE2b keyed with the seed)."""
    key = str(int(seed)).encode("ascii")
    return hashlib.blake2b(case_id.encode("utf-8"), key=key, digest_size=16).digest()


def fold_key(seed: int, case_id: str) -> int:
    """The keyed hash that places a case in a cross-validation fold (independent of :func:`rank_key`)."""
    key = str(int(seed)).encode("ascii")
    digest = hashlib.blake2b(case_id.encode("utf-8"), key=key, digest_size=16, person=b"fold").digest()
    return int.from_bytes(digest, "big")


def assign_folds(case_ids: Sequence[str], seed: int, folds: int) -> dict[str, list[str]]:
    """Split cases into ``folds`` cross-validation folds by their keyed hash.

    Args:
        case_ids: distinct case ids (any order): the labelled non-test cases.
        seed: the key of the hash (``split.seed``).
        folds: number of folds, >= 2.

    Returns:
        ``{"fold0": [...], ..., "fold<k-1>": [...]}``: the held-out (validation) cases of each fold, sorted;
        together they partition ``case_ids``.

    Raises:
        ValueError: on duplicate ids, ``folds < 2``, or a fold that would hold no case (naming it).
    """
    ids = [str(c) for c in case_ids]
    if len(set(ids)) != len(ids):
        raise ValueError(f"case_ids holds duplicates: {sorted({c for c in ids if ids.count(c) > 1})}")
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    out: dict[str, list[str]] = {f"fold{i}": [] for i in range(folds)}
    for case_id in sorted(ids):
        out[f"fold{fold_key(seed, case_id) % folds}"].append(case_id)
    empty = [name for name, members in out.items() if not members]
    if empty:
        raise ValueError(
            f"case_ids: {len(ids)} cases leave {', '.join(empty)} of {folds} folds empty (a fold is a keyed "
            "hash of the seed and the case id: add cases, lower the number of folds or change the seed)"
        )
    return out


def _count(fraction: float, n: int) -> int:
    if fraction <= 0:
        return 0
    return max(1, round(fraction * n))


def make_split(case_ids: Sequence[str], params: SplitParams) -> dict[str, list[str]]:
    """Assign each case to train, val or test, deterministically from ``params.seed``.

    Args:
        case_ids: distinct case ids (any order).
        params: seed and the val / test fractions (each in ``[0, 1)``, their sum below 1).

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each list sorted. When a fraction is above zero
        its set holds at least one case.

    Raises:
        ValueError: on duplicate ids, bad fractions, fewer than 3 cases while a fraction is above zero, or
            when no case would be left for training.
    """
    ids = [str(c) for c in case_ids]
    if len(set(ids)) != len(ids):
        dupes = sorted({c for c in ids if ids.count(c) > 1})
        raise ValueError(f"case_ids holds duplicates: {dupes}")
    for name in ("val_fraction", "test_fraction"):
        value = getattr(params, name)
        if not 0 <= value < 1:
            raise ValueError(f"params.{name} must lie in [0, 1), got {value}")
    if params.val_fraction + params.test_fraction >= 1:
        raise ValueError("params.val_fraction + params.test_fraction must be below 1")
    n = len(ids)
    if n < 3 and (params.val_fraction > 0 or params.test_fraction > 0):
        raise ValueError(f"case_ids: need at least 3 cases for a train/val/test split, got {n}")
    ranked = sorted(ids, key=lambda c: (rank_key(params.seed, c), c))
    n_test, n_val = _count(params.test_fraction, n), _count(params.val_fraction, n)
    if n_test + n_val >= n and n > 0:
        raise ValueError(
            f"case_ids: {n} cases leave none for training with {n_test} test and {n_val} validation cases"
        )
    return {
        "train": sorted(ranked[n_test + n_val :]),
        "val": sorted(ranked[n_test : n_test + n_val]),
        "test": sorted(ranked[:n_test]),
    }


def make_cv_split(case_ids: Sequence[str], params: SplitParams, folds: int = 1) -> dict[str, list[str]]:
    """The split for ``folds`` cross-validation folds (``cv.folds``).

    ``folds == 1``: :func:`make_split`. ``folds > 1``: the same test set, ``val`` empty
    (``params.val_fraction`` is not used: each fold validates on the cases it holds out), ``train`` every
    other case, and one key per fold (:func:`assign_folds` over ``train``): ``{"train", "val", "test",
    "fold0", ..., "fold<k-1>"}``.

    Raises:
        ValueError: as :func:`make_split` and :func:`assign_folds`.
    """
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    if folds == 1:
        return make_split(case_ids, params)
    split = make_split(case_ids, dataclasses.replace(params, val_fraction=0.0))
    return {**split, **assign_folds(split["train"], params.seed, folds)}


def held_out(split: dict[str, list[str]]) -> dict[str, list[str]]:
    """Fold name -> the cases it holds out, from a split of :func:`make_cv_split` (one fold: ``val``)."""
    folds = {name: ids for name, ids in split.items() if name.startswith("fold")}
    return folds or {"fold0": list(split.get("val", []))}


def _xyz(prefix: str, values: Sequence[Any] | None) -> dict[str, Any]:
    if values is None:
        return {f"{prefix}_{a}": None for a in "xyz"}
    return {f"{prefix}_{a}": v for a, v in zip("xyz", values, strict=True)}


def manifest_row(
    props: dict[str, Any], split_name: str, labels: LabelSet = BRATS_2021, fold: str = ""
) -> dict[str, Any]:
    """One manifest row from a cached case's ``properties.json`` contents (volumes of ``labels``' regions);
    ``fold``: the cross-validation fold that holds the case out (``""``: none)."""
    geometry = props.get("geometry", {})
    row: dict[str, Any] = {
        "case_id": props["case_id"],
        "split": split_name,
        "fold": fold,
        "has_label": bool(props.get("has_label", False)),
        "layout": props.get("layout"),
        "convention": props.get("convention"),
    }
    row.update(_xyz("shape", geometry.get("shape")))
    row.update(_xyz("spacing", geometry.get("spacing")))
    row.update(_xyz("cropped", props.get("cropped_shape")))
    bbox = props.get("bbox")
    for axis, name in enumerate("xyz"):
        row[f"bbox_{name}0"] = bbox[axis][0] if bbox else None
        row[f"bbox_{name}1"] = bbox[axis][1] if bbox else None
    volumes = props.get("volumes_ml") or {}
    for region in labels.region_names:
        row[f"volume_ml_{region}"] = volumes.get(region)
    counts = props.get("class_voxels") or {}
    for cls in labels.classes:
        row[f"voxels_{CANONICAL[cls]}"] = counts.get(CANONICAL[cls])
    stats = props.get("normalisation") or {}
    for modality in MODALITIES:
        s = stats.get(modality, {})
        for key in ("raw_mean", "raw_std", "raw_median", "clip_low", "clip_high", "mean", "std"):
            row[f"{modality}_{key}"] = s.get(key)
    return row


def build_manifest(
    properties: Sequence[dict[str, Any]],
    split: dict[str, list[str]],
    labels: LabelSet = BRATS_2021,
    folds: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """One row per case, sorted by case id.

    Args:
        properties: the ``properties.json`` contents of the cached cases.
        split: split name -> case ids (e.g. :func:`make_split`, plus ``"unlabelled"``).
        folds: fold name -> the cases it holds out (``{"fold0": split["val"]}`` for a single split,
            :func:`assign_folds` for k folds); ``None``: no fold column values.

    Returns:
        Columns: case_id, split, fold (the fold that holds the case out, or empty), has_label, layout,
        convention, original shape and spacing
        (``shape_x`` …, ``spacing_x`` …), cropped shape (``cropped_x`` …), crop box (``bbox_x0``,
        ``bbox_x1`` …), region volumes (``volume_ml_WT`` … for ``labels``' regions), class voxel counts
        (``voxels_NETC`` …), and per modality the
        intensity statistics inside the brain before normalisation (``t1_raw_mean``, ``t1_raw_std``,
        ``t1_raw_median``, ``t1_clip_low``, ``t1_clip_high``) and the z-score parameters (``t1_mean``,
        ``t1_std``).

    Raises:
        ValueError: if a case is in no split or in several, or a case id repeats.
    """
    where: dict[str, str] = {}
    for name, ids in split.items():
        for case_id in ids:
            if case_id in where:
                raise ValueError(f"split: case {case_id} is in both {where[case_id]!r} and {name!r}")
            where[case_id] = name
    held_out = {case_id: name for name, ids in (folds or {}).items() for case_id in ids}
    rows, seen = [], set()
    for props in properties:
        case_id = str(props["case_id"])
        if case_id in seen:
            raise ValueError(f"properties: case {case_id} appears twice")
        seen.add(case_id)
        if case_id not in where:
            raise ValueError(f"split: case {case_id} is in no split")
        rows.append(manifest_row(props, where[case_id], labels, held_out.get(case_id, "")))
    columns = list(manifest_row({"case_id": ""}, "", labels).keys())
    import pandas as pd  # only the manifest needs it: keeps every per-case step's start-up short

    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("case_id", kind="stable").reset_index(drop=True)
