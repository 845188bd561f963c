"""The preprocessing steps as the Snakemake rules call them: read, call the pure functions, write.

Each step writes its outputs atomically (a failed step leaves nothing behind) and lets a
:class:`~bratseg.errors.CaseError` through unchanged. Intermediate results are uncompressed ``.npz`` files
holding ``image`` ``(4, X, Y, Z)`` float32, ``mask`` ``(X, Y, Z)`` bool, ``classes`` ``(X, Y, Z)`` uint8
(labelled cases only) and ``meta``, a JSON string.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bratseg.config import N4Params, PreprocessParams, SplitParams
from bratseg.errors import CaseError, ConfigError, check_choice
from bratseg.io import atomic_path
from bratseg.labels import CLASS_NAMES, region_volumes_ml
from bratseg.layouts import MODALITIES, CaseFiles
from bratseg.preprocess.bias import n4_correct
from bratseg.preprocess.cache import open_case, sample_locations, write_cached_case
from bratseg.preprocess.crop import bbox_shape, brain_bbox, crop
from bratseg.preprocess.normalise import zscore
from bratseg.preprocess.split import build_manifest, make_split
from bratseg.preprocess.validate import ingest_case

CACHE_DTYPES = ("float16", "float32")
#: Provenance fields that vary from run to run; kept in the intermediate files, left out of the cache.
VOLATILE_KEYS = ("seconds",)


def write_npz(path: Path, arrays: dict[str, npt.NDArray[Any]], meta: dict[str, Any]) -> None:
    """Write an uncompressed ``.npz`` with ``arrays`` and ``meta`` (as a JSON string), atomically."""
    entries: dict[str, npt.NDArray[Any]] = {**arrays, "meta": np.array(json.dumps(meta, sort_keys=True))}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **entries)  # type: ignore[arg-type]


def read_npz(path: Path) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """The arrays and the ``meta`` mapping of an intermediate ``.npz``."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != "meta"}
        meta = json.loads(str(data["meta"]))
    return arrays, meta


def ingest(files: CaseFiles, out_npz: Path) -> None:
    """Read and validate one raw case (:func:`~bratseg.preprocess.validate.ingest_case`) into ``out_npz``."""
    case = ingest_case(files)
    arrays: dict[str, npt.NDArray[Any]] = {"image": case.image, "mask": case.mask}
    if case.classes is not None:
        arrays["classes"] = case.classes
    meta = {
        "case_id": case.case_id,
        "layout": case.layout,
        "convention": case.convention,
        "geometry": case.geometry.to_dict(),
        "sources": case.sources,
        "has_label": case.has_label,
    }
    write_npz(Path(out_npz), arrays, meta)


def bias_correct(in_npz: Path, out_npz: Path, params: N4Params, threads: int = 1) -> None:
    """N4-correct each modality of an ingested case on its brain mask; same format, provenance in meta."""
    arrays, meta = read_npz(Path(in_npz))
    image, mask = arrays["image"], arrays["mask"]
    spacing = tuple(float(s) for s in meta["geometry"]["spacing"])
    corrected = np.empty_like(image, dtype=np.float32)
    provenance: dict[str, Any] = {}
    for i, modality in enumerate(MODALITIES):
        try:
            corrected[i], _, provenance[modality] = n4_correct(
                image[i], mask, (spacing[0], spacing[1], spacing[2]), params, threads
            )
        except (ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            source = meta["sources"][modality]
            raise CaseError(meta["case_id"], source, f"N4 bias correction: {reason}") from exc
    meta["n4"] = {"params": params.to_dict(), "threads": threads, "modalities": provenance}
    write_npz(Path(out_npz), {**arrays, "image": corrected}, meta)


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
    locations = (
        sample_locations(label, params.cache.locations_per_class, seed_used)
        if label is not None
        else {c: np.empty((0, 3), np.int32) for c in (1, 2, 3)}
    )
    spacing = [float(s) for s in meta["geometry"]["spacing"]]
    properties: dict[str, Any] = {
        "case_id": case_id,
        "layout": meta["layout"],
        "convention": meta["convention"],
        "sources": meta["sources"],
        "geometry": meta["geometry"],
        "spacing": spacing,
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
        counts = np.bincount(classes.reshape(-1), minlength=len(CLASS_NAMES))
        properties["class_voxels"] = {name: int(n) for name, n in zip(CLASS_NAMES, counts, strict=True)}
        properties["volumes_ml"] = region_volumes_ml(classes, (spacing[0], spacing[1], spacing[2]))
        properties["location_counts"] = {str(c): len(v) for c, v in locations.items()}
    write_cached_case(Path(out_dir), cropped, label, locations, properties)


def write_manifest(
    case_dirs: Sequence[Path], out_csv: Path, out_parquet: Path, out_split: Path, params: SplitParams
) -> None:
    """The cohort manifest (CSV and Parquet) and the split (JSON) over the cached cases ``case_dirs``.

    Only labelled cases are split into train / val / test; unlabelled ones go to ``"unlabelled"``. The three
    files are written together: if any fails, none is replaced.
    """
    cases = [open_case(Path(d)) for d in case_dirs]
    labelled = [c.case_id for c in cases if c.has_label]
    try:
        split = make_split(labelled, params)
    except ValueError as exc:  # e.g. a validation release with no segmentation: nothing to train on
        raise ConfigError(f"split: {exc} ({len(labelled)} labelled of {len(cases)} cases)") from exc
    split["unlabelled"] = sorted(c.case_id for c in cases if not c.has_label)
    frame = build_manifest([c.properties for c in cases], split)
    with contextlib.ExitStack() as stack:
        csv_tmp = stack.enter_context(atomic_path(out_csv))
        frame.to_csv(csv_tmp, index=False, lineterminator="\n")
        parquet_tmp = stack.enter_context(atomic_path(out_parquet))
        frame.to_parquet(parquet_tmp, index=False)
        split_tmp = stack.enter_context(atomic_path(out_split))
        split_tmp.write_text(json.dumps(split, indent=2, sort_keys=True) + "\n")
