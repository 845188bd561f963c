"""Step ``manifest``: the cohort manifest, the train / val / test split and the dataset fingerprint (with the
cohort's label set) over the cached cases."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bratseg.cache import open_case
from bratseg.config import SplitParams
from bratseg.errors import ConfigError
from bratseg.io import atomic_path
from bratseg.preprocess.fingerprint import cohort_fingerprint, cohort_label_set
from bratseg.preprocess.split import build_manifest, held_out, make_cv_split


@dataclass(frozen=True)
class ManifestFiles:
    """The outputs of the step."""

    csv: Path
    parquet: Path
    split: Path
    fingerprint: Path


def write_manifest(
    case_dirs: Sequence[Path], out: ManifestFiles, params: SplitParams, labels: str = "auto", folds: int = 1
) -> None:
    """The cohort manifest (CSV and Parquet), the split and the fingerprint (JSON) of the cached cases.

    Only labelled cases are split into train / val / test; unlabelled ones go to ``"unlabelled"``. With
    ``folds`` (``cv.folds``) > 1 the labelled non-test cases are also assigned to cross-validation folds
    (:func:`~bratseg.preprocess.split.make_cv_split`), and the manifest names each case's fold. The
    cohort's label set (``labels``: ``data.labels``) is settled here (:func:`cohort_label_set`). The four
    files are written together: if any fails, none is replaced.
    """
    cases = [open_case(Path(d)) for d in case_dirs]
    cohort_labels = cohort_label_set([c.properties for c in cases], labels)
    labelled = [c.case_id for c in cases if c.has_label]
    try:
        split = make_cv_split(labelled, params, folds)
    except ValueError as exc:  # e.g. a validation release with no segmentation: nothing to train on
        raise ConfigError(f"split: {exc} ({len(labelled)} labelled of {len(cases)} cases)") from exc
    split["unlabelled"] = sorted(c.case_id for c in cases if not c.has_label)
    plain = {name: ids for name, ids in split.items() if not name.startswith("fold")}
    frame = build_manifest([c.properties for c in cases], plain, cohort_labels, held_out(split))
    fingerprint = cohort_fingerprint([c.properties for c in cases], cohort_labels)
    with contextlib.ExitStack() as stack:
        csv_tmp = stack.enter_context(atomic_path(out.csv))
        frame.to_csv(csv_tmp, index=False, lineterminator="\n")
        parquet_tmp = stack.enter_context(atomic_path(out.parquet))
        frame.to_parquet(parquet_tmp, index=False)
        split_tmp = stack.enter_context(atomic_path(out.split))
        split_tmp.write_text(json.dumps(split, indent=2, sort_keys=True) + "\n")
        fingerprint_tmp = stack.enter_context(atomic_path(out.fingerprint))
        fingerprint_tmp.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")


def cached_case_dirs(cases_dir: Path) -> list[Path]:
    """The cached case folders in ``cases_dir``, sorted by case id (temporary folders left out).

    Raises:
        ConfigError: if ``cases_dir`` holds no cached case.
    """
    cases_dir = Path(cases_dir)
    found = cases_dir.iterdir() if cases_dir.is_dir() else iter(())
    dirs = sorted(p for p in found if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise ConfigError(f"{cases_dir}: no cached case (run the preprocess stage first)")
    return dirs
