"""The train / val / test split and the cohort manifest.

The split ranks the cases by a keyed hash of ``(seed, case_id)`` and cuts the ranking: the first
``max(1, round(test_fraction * N))`` cases are the test set, the next ``max(1, round(val_fraction * N))`` the
validation set (a zero fraction gives an empty set), the rest the training set. It depends on nothing but the
seed and the ids, and adding a case moves at most one existing case across each of the two cuts.
"""

from __future__ import annotations

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


def _xyz(prefix: str, values: Sequence[Any] | None) -> dict[str, Any]:
    if values is None:
        return {f"{prefix}_{a}": None for a in "xyz"}
    return {f"{prefix}_{a}": v for a, v in zip("xyz", values, strict=True)}


def manifest_row(props: dict[str, Any], split_name: str, labels: LabelSet = BRATS_2021) -> dict[str, Any]:
    """One manifest row from a cached case's ``properties.json`` contents (volumes of ``labels``' regions)."""
    geometry = props.get("geometry", {})
    row: dict[str, Any] = {
        "case_id": props["case_id"],
        "split": split_name,
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
    properties: Sequence[dict[str, Any]], split: dict[str, list[str]], labels: LabelSet = BRATS_2021
) -> pd.DataFrame:
    """One row per case, sorted by case id.

    Args:
        properties: the ``properties.json`` contents of the cached cases.
        split: split name -> case ids (e.g. :func:`make_split`, plus ``"unlabelled"``).

    Returns:
        Columns: case_id, split, has_label, layout, convention, original shape and spacing
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
    rows, seen = [], set()
    for props in properties:
        case_id = str(props["case_id"])
        if case_id in seen:
            raise ValueError(f"properties: case {case_id} appears twice")
        seen.add(case_id)
        if case_id not in where:
            raise ValueError(f"split: case {case_id} is in no split")
        rows.append(manifest_row(props, where[case_id], labels))
    columns = list(manifest_row({"case_id": ""}, "", labels).keys())
    import pandas as pd  # only the manifest needs it: keeps every per-case step's start-up short

    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("case_id", kind="stable").reset_index(drop=True)
