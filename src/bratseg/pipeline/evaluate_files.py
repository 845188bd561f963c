"""``bratseg evaluate``: score segmentation files against references, as the BraTS challenges do.

Predictions and references are two files, or two folders whose NIfTI files are paired by their BraTS id
(``\\d{5}-\\d{3}`` as in ``BraTS-GLI-00042-000``, the way the official tool pairs them, else the 2018-2021
``BraTS20xx_...`` ids, else the file name). Files without a partner are listed, never silently skipped. A bad
pair (unreadable file, shape or affine mismatch, unknown label) is reported in one line naming the file, and
the other cases are still scored; the command then exits with status 1.

The label set comes from ``--labels`` or, under ``auto``, from the case ids (BraTS-PED needs it given) and,
for the adult glioma releases, the label values found; the lesion-wise preset from ``--preset`` or the
challenge in the ids (``metrics.lesionwise.preset`` otherwise).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bratseg.config import MetricsParams
from bratseg.errors import BratsegError, ConfigError
from bratseg.evaluation.scoring import flat_row, score_case
from bratseg.evaluation.summary import summarise
from bratseg.io import Geometry, atomic_path, load_nifti, save_json
from bratseg.labels import LABEL_SETS, LabelSet, label_set
from bratseg.rawcase import read_segmentation

#: The fields of each region in the JSON output, in order.
FIELDS = ("dice", "iou", "hd95", "nsd", "lesion_dice", "lesion_hd95", "lesion_nsd", "tp", "fp", "fn")
_ID_PATTERNS = (re.compile(r"(\d{5}-\d{3})"), re.compile(r"(BraTS\d*_(?:Training_|Validation_)?\d+)"))
_CHALLENGES: dict[str, str] = {"GLI": "gli", "MEN": "men", "MET": "met", "PED": "ped", "SSA": "ssa"}


def case_id(path: Path) -> str:
    """The id a file is paired by: the BraTS 2023+ ``NNNNN-NNN``, an older BraTS id, or the file stem."""
    name = path.name
    for pattern in _ID_PATTERNS:
        found = pattern.search(name)
        if found:
            return found.group(1)
    return name.split(".")[0]


def _niftis(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.name.endswith((".nii", ".nii.gz")) and not p.name.startswith(".")
    )


@dataclass(frozen=True)
class Pairing:
    pairs: list[tuple[str, Path, Path]]  # (case id, prediction, reference)
    unpaired_predictions: list[Path]
    unpaired_references: list[Path]


def pair_files(pred: Path, ref: Path) -> Pairing:
    """Pair two files, or the NIfTI files of two folders by case id.

    Raises:
        ConfigError: if the paths are not two files or two folders, or a folder repeats a case id.
    """
    if pred.is_file() and ref.is_file():
        return Pairing([(case_id(ref), pred, ref)], [], [])
    if not (pred.is_dir() and ref.is_dir()):
        raise ConfigError(f"evaluate: --pred {pred} and --ref {ref} must be two files or two folders")
    found: dict[str, dict[str, Path]] = {}
    for side, folder in (("pred", pred), ("ref", ref)):
        for path in _niftis(folder):
            cid = case_id(path)
            if cid in found.setdefault(side, {}):
                raise ConfigError(
                    f"evaluate: {folder} holds two files for case {cid}: {found[side][cid].name}, {path.name}"
                )
            found[side][cid] = path
    preds, refs = found.get("pred", {}), found.get("ref", {})
    pairs = [(cid, preds[cid], refs[cid]) for cid in sorted(set(preds) & set(refs))]
    return Pairing(
        pairs,
        [preds[c] for c in sorted(set(preds) - set(refs))],
        [refs[c] for c in sorted(set(refs) - set(preds))],
    )


def _values(path: Path, cid: str) -> set[int]:
    data = np.asanyarray(load_nifti(path, cid).dataobj)
    return {int(v) for v in np.unique(data)}


def _challenge(name: str) -> str | None:
    found = re.search(r"BraTS-([A-Za-z]+)-\d{5}-\d{3}", name)
    return found.group(1).upper() if found else None


def resolve_labels(requested: str, refs: Sequence[Path], files: Sequence[Path]) -> LabelSet:
    """The label set of the cases, from the reference file names and the values of ``files`` (the references
    and predictions).

    Under ``auto``: Decathlon names (``BRATS_001``) are ``msd_task01``; BraTS 2023+ names
    (``BraTS-GLI-00000-000``) are ``brats2024`` when a file holds label 4 (a resection cavity) and
    ``brats2023`` otherwise (the two differ only by RC), except BraTS-PED, whose 2023 and 2024 labels mean
    different things; BraTS 2018-2021 names are ``brats2021``; other names are ``brats2021`` when only its
    values (4 = enhancing, no 3) are found.

    Raises:
        ConfigError: when ``auto`` cannot tell; the message names ``--labels``.
    """
    if requested != "auto":
        return label_set(requested)
    names = [r.name for r in refs]
    if names and all(re.match(r"BRATS_\d{3}\.nii", n) for n in names):
        return LABEL_SETS["msd_task01"]
    challenges = {_challenge(n) for n in names}
    if "PED" in challenges:
        raise ConfigError("evaluate: BraTS-PED labels mean different things in 2023 and 2024: pass --labels")
    if names and all(re.match(r"(BraTS20|BraTS19_|Brats18_)", n) for n in names):
        return LABEL_SETS["brats2021"]
    found: set[int] = set()
    for path in files:
        found |= _values(path, path.name)
    if names and None not in challenges:
        return LABEL_SETS["brats2024" if 4 in found else "brats2023"]
    if 4 in found and 3 not in found:
        return LABEL_SETS["brats2021"]
    raise ConfigError(f"evaluate: label values {sorted(found)} do not tell the release: pass --labels")


def resolve_preset(requested: str | None, refs: Sequence[Path], params: MetricsParams) -> str:
    """``--preset``, else the challenge named in the BraTS 2023+ file names, else the params' preset."""
    if requested:
        return requested
    found = {_CHALLENGES.get(c or "") for c in (_challenge(r.name) for r in refs)}
    found.discard(None)
    return str(found.pop()) if len(found) == 1 else params.lesionwise.preset


def score_pair(
    cid: str, pred: Path, ref: Path, params: MetricsParams, labels: LabelSet
) -> dict[str, dict[str, float]]:
    """Scores of one case; the prediction must lie on the reference's grid.

    Raises:
        CaseError: naming the case and the offending file.
    """
    ref_img = load_nifti(ref, cid)
    geometry = Geometry.from_image(ref_img)
    reference = read_segmentation(cid, ref, labels)
    prediction = read_segmentation(cid, pred, labels, geometry)
    return score_case(prediction, reference, geometry.spacing, params, labels)


def _summary(frame: pd.DataFrame, regions: Sequence[str]) -> dict[str, Any]:
    """Mean, standard deviation and median per region and metric."""
    out = summarise(frame, regions)
    for metric, per_region in out.items():
        if not isinstance(per_region, dict):
            continue
        for region, stats in per_region.items():
            if isinstance(stats, dict):
                values = frame[f"{metric}_{region}"].to_numpy(dtype=float)
                finite = values[np.isfinite(values)]
                stats["std"] = round(float(finite.std()), 6) if finite.size else None
    return out


def evaluate_files(
    pred: Path,
    ref: Path,
    params: MetricsParams,
    labels: str = "auto",
    preset: str | None = None,
    matching: str | None = None,
    hd95_units: str | None = None,
    output: Path | None = None,
    csv: Path | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Score every pair; returns the JSON document and the one-line errors of the pairs that failed.

    Raises:
        ConfigError: on paths that are neither two files nor two folders, or no pair at all.
    """
    pairing = pair_files(pred, ref)
    errors = [f"{p}: no reference with its case id" for p in pairing.unpaired_predictions]
    errors += [f"{r}: no prediction with its case id" for r in pairing.unpaired_references]
    if not pairing.pairs:
        raise ConfigError(f"evaluate: no prediction and reference share a case id ({'; '.join(errors)})")
    refs = [r for _, _, r in pairing.pairs]
    lesionwise = dataclasses.replace(
        params.lesionwise,
        preset=resolve_preset(preset, refs, params),
        matching=matching or params.lesionwise.matching,
    )
    params = dataclasses.replace(params, lesionwise=lesionwise, hd95_units=hd95_units or params.hd95_units)
    label_set_ = resolve_labels(labels, refs, [f for _, p, r in pairing.pairs for f in (p, r)])
    cases, rows = [], []
    for cid, p, r in pairing.pairs:
        try:
            scores = score_pair(cid, p, r, params, label_set_)
        except BratsegError as exc:
            errors.append(str(exc))
            continue
        cases.append(
            {"case": cid, "regions": {reg: {k: v[k] for k in FIELDS if k in v} for reg, v in scores.items()}}
        )
        rows.append(flat_row(cid, scores))
    frame = pd.DataFrame(rows)
    document: dict[str, Any] = {
        "labels": label_set_.name,
        "preset": params.lesionwise.preset,
        "matching": params.lesionwise.matching,
        "hd95_units": params.hd95_units,
        "cases": cases,
        "summary": _summary(frame, label_set_.region_names) if rows else {},
        "unpaired": [str(p) for p in (*pairing.unpaired_predictions, *pairing.unpaired_references)],
    }
    if output is not None:
        save_json(output, json.loads(json.dumps(document, allow_nan=True)))
    if csv is not None:
        with atomic_path(csv) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    return document, errors
