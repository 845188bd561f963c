"""The dataset fingerprint (as nnU-Net keeps one) and the cohort's label set.

Per case, ingest records the native spacing, shape and orientation, intensity percentiles of each modality
inside the brain and the label volumes (:func:`bratseg.preprocess.steps.ingest.case_fingerprint`); here they
are gathered into ``fingerprint.json`` with the cohort summary: median spacing, the range of shapes, the
orientations met, class frequencies, the spacing the cases were resampled to, and the label set the cohort is
trained and evaluated with.

Label set under ``data.labels: auto``: each labelled case allows the sets its layout names (e.g. BraTS-GLI:
2023 or 2024) that define every label value found in it; the cohort's set is the one all cases allow. Where
that leaves more than one (2023 vs 2024 GLI when no case has label 4), it stops with one line naming the
parameter to set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from bratseg.errors import ConfigError
from bratseg.labels import CANONICAL, LabelSet, label_set


def _allowed(props: dict[str, Any]) -> set[str]:
    found = set(props.get("fingerprint", {}).get("values_found", []))
    return {
        name
        for name in props.get("label_candidates", [props["convention"]])
        if found <= set(label_set(name).values)
    }


def cohort_label_set(properties: Sequence[dict[str, Any]], requested: str = "auto") -> LabelSet:
    """The label set of the cohort whose cached cases have ``properties``.

    Raises:
        ConfigError: when ``auto`` cannot decide, or cases were read with different label sets.
    """
    if requested != "auto":
        return label_set(requested)
    read_with = sorted({p["convention"] for p in properties})
    labelled = [p for p in properties if p.get("has_label")]
    if not labelled:
        return label_set(read_with[0])
    allowed = set.intersection(*(_allowed(p) for p in labelled))
    if len(allowed) == 1:
        return label_set(allowed.pop())
    if not allowed:
        raise ConfigError(
            f"data.labels: the cases were read with different label sets ({', '.join(read_with)}); "
            "put one release per cohort or set data.labels"
        )
    raise ConfigError(
        f"data.labels: the label values found fit {' and '.join(sorted(allowed))} alike (no case has a label "
        "only one of them defines): set data.labels to the release of the cohort"
    )


def _median(values: Sequence[Sequence[float]]) -> list[float]:
    return [float(v) for v in np.median(np.asarray(values, dtype=np.float64), axis=0)]


def cohort_fingerprint(properties: Sequence[dict[str, Any]], labels: LabelSet) -> dict[str, Any]:
    """``fingerprint.json``: per-case fingerprints and the cohort summary (see the module docstring)."""
    cases = {p["case_id"]: p.get("fingerprint", {}) for p in properties}
    # along the RAS+ axes, as the target spacing (auto) is taken; files without it: their voxel order
    spacings = [f.get("spacing_ras", f["spacing"]) for f in cases.values() if "spacing" in f]
    shapes = [f["shape"] for f in cases.values() if "shape" in f]
    voxels: Counter[str] = Counter()
    for f in cases.values():
        voxels.update(f.get("class_voxels", {}))
    total = sum(voxels.values())
    processed = [p.get("transforms", {}).get("resampling", {}) for p in properties]
    target = next((r.get("target_spacing") for r in processed if r), None)
    return {
        "n_cases": len(properties),
        "n_labelled": sum(bool(p.get("has_label")) for p in properties),
        "labels": {
            "name": labels.name,
            "description": labels.description,
            "classes": {CANONICAL[c]: labels.names[c] for c in labels.classes},
            "regions": {r.name: [CANONICAL[c] for c in r.classes] for r in labels.regions},
        },
        "median_spacing_mm": _median(spacings) if spacings else None,
        "target_spacing_mm": target,
        "shape_min": [int(v) for v in np.min(shapes, axis=0)] if shapes else None,
        "shape_median": _median(shapes) if shapes else None,
        "shape_max": [int(v) for v in np.max(shapes, axis=0)] if shapes else None,
        "orientations": dict(sorted(Counter(f.get("axcodes", "?") for f in cases.values()).items())),
        "class_frequency": {name: round(n / total, 6) for name, n in sorted(voxels.items())} if total else {},
        "cases": cases,
    }
