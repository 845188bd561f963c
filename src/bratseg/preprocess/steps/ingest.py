"""Step ``ingest``: read and validate one raw case, reorient it to RAS+, resample it to the target spacing,
and add its brain mask.

Everything done to the grid is recorded in ``meta["transforms"]`` (reorientation, then resampling; see
:mod:`bratseg.spatial.orient` and :mod:`bratseg.spatial.resample`), and the native grid (shape, affine, NIfTI
header) in ``meta["geometry"]``, so that a prediction is written back onto the exact native grid. The
per-case part of the dataset fingerprint (native spacing, shape, orientation, intensity percentiles inside
the brain, label volumes) goes to ``meta["fingerprint"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bratseg.labels import CANONICAL, label_set
from bratseg.layouts import MODALITIES, CaseFiles
from bratseg.preprocess.mask import brain_mask
from bratseg.preprocess.steps.interim import write_npz
from bratseg.rawcase import RawCase, read_case
from bratseg.spatial import orient, resample

#: Intensity percentiles of each modality inside the brain kept in the fingerprint.
PERCENTILES = (0.5, 5.0, 50.0, 95.0, 99.5)


@dataclass(frozen=True)
class IngestOptions:
    """What ingest does to the grid.

    Attributes:
        target_spacing: voxel spacing in mm to resample to (RAS+ axis order), or ``None`` to keep the native
            grid.
        image_order: spline order of the image resampling.
        resample_to: the modality whose grid the others are put onto (``data.resample_to``), or ``None``.
    """

    target_spacing: tuple[float, float, float] | None = None
    image_order: int = 3
    resample_to: str | None = None


def case_fingerprint(case: RawCase, axcodes: str) -> dict[str, Any]:
    """Native spacing, shape and orientation, intensity percentiles inside the brain, label volumes.

    ``spacing`` and ``shape`` are in the file's voxel order; ``spacing_ras`` is the spacing along the RAS+
    axes, the order in which cases are processed and the cohort's median spacing is taken."""
    mask = np.any(case.image != 0, axis=0)
    native = case.geometry.affine_array
    ras = orient.reoriented_affine(native, orient.to_canonical(native), case.geometry.shape)
    intensity = {}
    for i, modality in enumerate(MODALITIES):
        values = case.image[i][mask]
        qs = np.percentile(values, PERCENTILES) if values.size else [float("nan")] * len(PERCENTILES)
        intensity[modality] = {f"p{p:g}": float(q) for p, q in zip(PERCENTILES, qs, strict=True)}
        intensity[modality]["mean"] = float(values.mean()) if values.size else float("nan")
    out: dict[str, Any] = {
        "spacing": list(case.geometry.spacing),
        "spacing_ras": [float(z) for z in np.linalg.norm(ras[:3, :3], axis=0)],
        "shape": list(case.geometry.shape),
        "axcodes": axcodes,
        "brain_ml": float(np.count_nonzero(mask)) * float(np.prod(case.geometry.spacing)) / 1000.0,
        "intensity": intensity,
    }
    if case.classes is not None:
        labels = label_set(case.convention)
        counts = np.bincount(case.classes.reshape(-1), minlength=len(CANONICAL))
        out["class_voxels"] = {CANONICAL[c]: int(counts[c]) for c in labels.classes}
        out["values_found"] = sorted(int(v) for v, c in labels.values.items() if counts[c] > 0 or v == 0)
        out["volumes_ml"] = labels.volumes_ml(case.classes, case.geometry.spacing)
    return out


def prepare(case: RawCase, options: IngestOptions) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """The arrays (image, mask, classes) on the processed grid, and the transforms that made it."""
    image, classes, affine, orientation = orient.reorient(
        case.image, case.classes, case.geometry.affine_array
    )
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    mask = brain_mask(image)
    plan = resample.plan(image.shape[1:], spacing, options.target_spacing)
    if plan["resampled"]:
        shape = (plan["shape"][0], plan["shape"][1], plan["shape"][2])
        image, mask = resample.resample_image(image, mask, shape, spacing, options.image_order)
        if classes is not None:
            classes = resample.resample_classes(classes, shape, spacing)
        affine = resample.resampled_affine(affine, plan["native_shape"], shape)
    arrays: dict[str, npt.NDArray[Any]] = {"image": image, "mask": mask}
    if classes is not None:
        arrays["classes"] = classes
    transforms = {
        "resample_to": options.resample_to,  # modalities put onto this one's grid when read (read_case)
        "orientation": orientation,
        "resampling": plan,
        "affine": np.asarray(affine).tolist(),
        "spacing": list(plan["spacing"]) if plan["resampled"] else list(spacing),
    }
    return arrays, transforms


def ingest(
    files: CaseFiles, out_npz: Path, options: IngestOptions | None = None, named: CaseFiles | None = None
) -> None:
    """Read and validate one raw case (:func:`~bratseg.rawcase.read_case`), bring it to the processed grid
    (:func:`prepare`), and write ``out_npz``.

    Args:
        files: the case's files, where this process reads them.
        out_npz: the interim file written.
        options: what is done to the grid.
        named: the same case as the workflow names its files (default ``files``): the ``sources`` recorded,
            from which later steps read the raw files again. A job without a shared filesystem reads copies
            of the files (Snakemake's storage) kept elsewhere.

    Raises:
        ValueError: ``named`` is another case.
    """
    if named is not None and named.case_id != files.case_id:
        raise ValueError(f"named: case {named.case_id} is not case {files.case_id}")
    options = options or IngestOptions()
    case = read_case(files, options.resample_to)
    arrays, transforms = prepare(case, options)
    sources = case.sources if named is None else named.sources()
    meta = {
        "case_id": case.case_id,
        "layout": case.layout,
        "convention": case.convention,
        "label_candidates": list(files.candidates),
        "case_meta": dict(files.meta),
        "geometry": case.geometry.to_dict(),
        "transforms": transforms,
        "spacing": transforms["spacing"],
        "sources": sources,
        "channels": dict(files.channels),
        "has_label": case.has_label,
        "fingerprint": case_fingerprint(case, transforms["orientation"]["native_axcodes"]),
    }
    write_npz(Path(out_npz), arrays, meta)


def as_target(value: Sequence[float] | None) -> tuple[float, float, float] | None:
    """A resolved target spacing (three positive numbers) or ``None``."""
    if value is None:
        return None
    t = [float(v) for v in value]
    if len(t) != 3 or not all(v > 0 for v in t):
        raise ValueError(f"target spacing must be three positive numbers, got {list(value)}")
    return (t[0], t[1], t[2])
