"""Step ``finalise``: z-score inside the brain, crop, remap labels, write the cached case."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from bratseg.cache import write_cached_case
from bratseg.config import PreprocessParams
from bratseg.errors import CaseError, check_choice
from bratseg.labels import CANONICAL, label_set
from bratseg.layouts import MODALITIES
from bratseg.preprocess.locations import sample_locations
from bratseg.preprocess.normalise import zscore
from bratseg.preprocess.steps.interim import read_npz
from bratseg.spatial.crop import bbox_shape, brain_bbox, crop

CACHE_DTYPES = ("float16", "float32")
#: Provenance fields that vary from run to run; kept in the intermediate files, left out of the cache.
VOLATILE_KEYS = ("seconds",)


def case_seed(seed: int, case_id: str) -> int:
    """A per-case seed derived from the global ``seed`` and the case id (stable across runs and machines)."""
    digest = hashlib.blake2b(f"{int(seed)}:{case_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _stable(provenance: Any) -> Any:
    """``provenance`` without the run-to-run varying fields (timings)."""
    if isinstance(provenance, dict):
        return {k: _stable(v) for k, v in provenance.items() if k not in VOLATILE_KEYS}
    return provenance


def finalise(in_npz: Path, out_dir: Path, params: PreprocessParams, seed: int = 0) -> None:
    """Z-score each modality inside the brain, crop to the brain box, and write the cached case ``out_dir``.

    The crop box covers the brain mask and every labelled voxel, grown by ``params.crop.margin_vox``.
    Foreground locations are drawn with :func:`case_seed` ``(seed, case_id)``.
    """
    check_choice("params.cache.dtype", params.cache.dtype, CACHE_DTYPES)
    arrays, meta = read_npz(Path(in_npz))
    case_id = meta["case_id"]
    image, mask = arrays["image"], arrays["mask"]
    classes = arrays.get("classes")
    normalised = np.empty(image.shape, dtype=np.float32)
    stats: dict[str, Any] = {}
    for i, modality in enumerate(MODALITIES):
        try:
            normalised[i], stats[modality] = zscore(image[i], mask, params.normalise.clip_percentiles)
        except ValueError as exc:
            raise CaseError(case_id, meta["sources"][modality], f"normalisation: {exc}") from exc
    keep = mask if classes is None else (mask | (classes > 0))
    try:
        bbox = brain_bbox(keep, params.crop.margin_vox)
    except ValueError as exc:
        raise CaseError(case_id, meta["sources"][MODALITIES[0]], f"cropping: {exc}") from exc
    cropped = np.ascontiguousarray(crop(normalised, bbox), dtype=params.cache.dtype)
    label = None if classes is None else np.ascontiguousarray(crop(classes, bbox))
    seed_used = case_seed(seed, case_id)
    labels = label_set(meta["convention"])
    locations = (
        sample_locations(label, params.cache.locations_per_class, seed_used, labels.classes)
        if label is not None
        else {c: np.empty((0, 3), np.int32) for c in labels.classes}
    )
    spacing = [float(s) for s in meta["spacing"]]
    properties: dict[str, Any] = {
        "case_id": case_id,
        "layout": meta["layout"],
        "convention": meta["convention"],
        "sources": meta["sources"],
        "channels": meta["channels"],
        "geometry": meta["geometry"],
        "transforms": meta["transforms"],
        "spacing": spacing,
        "label_candidates": meta["label_candidates"],
        "case_meta": meta["case_meta"],
        "fingerprint": meta["fingerprint"],
        "bbox": [list(b) for b in bbox],
        "cropped_shape": list(bbox_shape(bbox)),
        "brain_voxels": int(np.count_nonzero(mask)),
        "normalisation": stats,
        "n4": _stable(meta.get("n4", {"params": {"enabled": False}})),
        "preprocess": params.to_dict(),
        "locations_seed": seed_used,
        "locations_per_class": params.cache.locations_per_class,
        "modalities": list(MODALITIES),
    }
    if classes is not None:
        counts = np.bincount(classes.reshape(-1), minlength=len(CANONICAL))
        properties["class_voxels"] = {CANONICAL[c]: int(counts[c]) for c in labels.classes}
        properties["volumes_ml"] = labels.volumes_ml(classes, spacing)
        properties["location_counts"] = {str(c): len(v) for c, v in locations.items()}
    write_cached_case(Path(out_dir), cropped, label, locations, properties)
