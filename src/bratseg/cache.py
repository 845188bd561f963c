"""The cached per-case format: written by preprocessing, read by training, inference and evaluation.

Memory-mapped ``.npy`` arrays that a training loop reads fast.

One directory per case, written as a whole with :func:`bratseg.io.atomic_dir` (a reader never sees half a
case)::

    <root>/<case_id>/
        image.npy        (4, X, Y, Z) float16 or float32, z-scored, cropped to the brain
        label.npy        (X, Y, Z) uint8 canonical classes (bratseg.labels; labelled cases only)
        locations.npz    "1", "2", ...: (N, 3) int32 voxel coordinates of each class of the case's label set
        properties.json  everything needed to undo the preprocessing and describe the case

Plain ``.npy`` opened with ``mmap_mode="r"`` was chosen by measurement (``benchmarks/bench_patch_read.py``):
with the pages cached, a random 4 x 64^3 patch costs a strided memory copy (about 0.5 ms), 4-10x faster than
decompressing blosc2 or zarr chunks and 70-280x faster than decoding the ``.nii.gz`` files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bratseg.io import atomic_dir
from bratseg.labels import N_CANONICAL, LabelSet, label_set

IMAGE_FILE = "image.npy"
LABEL_FILE = "label.npy"
LOCATIONS_FILE = "locations.npz"
PROPERTIES_FILE = "properties.json"
#: The canonical tumour classes a locations file may hold (each case stores those of its label set).
FOREGROUND_CLASSES: tuple[int, ...] = tuple(range(1, N_CANONICAL))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"properties: {type(obj).__name__} is not JSON-serialisable")


def write_cached_case(
    directory: Path,
    image: npt.NDArray[np.floating],
    label: npt.NDArray[np.uint8] | None,
    locations: dict[int, npt.NDArray[np.int32]],
    properties: dict[str, Any],
) -> None:
    """Write one cached case, replacing ``directory`` as a whole.

    Args:
        directory: ``<root>/<case_id>``.
        image: ``(C, X, Y, Z)`` float16 or float32, stored as is.
        label: ``(X, Y, Z)`` uint8 classes, or ``None`` for an unlabelled case.
        locations: from :func:`bratseg.preprocess.locations.sample_locations` (coordinates inside
            ``(X, Y, Z)``).
        properties: JSON-able description; must hold ``case_id``. ``has_label``, ``image_shape`` and
            ``image_dtype`` are set here.
    """
    image = np.asarray(image)
    if image.ndim != 4:
        raise ValueError(f"image must have shape (C, X, Y, Z), got {image.shape}")
    if image.dtype not in (np.float16, np.float32):
        raise ValueError(f"image must be float16 or float32, got {image.dtype}")
    if label is not None:
        label = np.asarray(label)
        if label.shape != image.shape[1:]:
            raise ValueError(f"label shape {label.shape} differs from the image's spatial {image.shape[1:]}")
        if label.dtype != np.uint8:
            raise ValueError(f"label must be uint8 classes, got dtype {label.dtype}")
    if "case_id" not in properties:
        raise ValueError("properties must hold 'case_id'")
    if set(locations) - set(FOREGROUND_CLASSES):
        raise ValueError(f"locations keys must be among {FOREGROUND_CLASSES}, got {sorted(locations)}")
    arrays: dict[str, npt.NDArray[np.int32]] = {}
    for cls in sorted(locations):
        coords = np.asarray(locations[cls], dtype=np.int32).reshape(-1, 3)
        if coords.size and ((coords < 0).any() or (coords >= np.array(image.shape[1:])).any()):
            raise ValueError(f"locations[{cls}] holds coordinates outside the volume {image.shape[1:]}")
        arrays[str(cls)] = coords
    props = {
        **properties,
        "has_label": label is not None,
        "image_shape": list(image.shape),
        "image_dtype": str(image.dtype),
    }
    text = json.dumps(props, indent=2, sort_keys=True, default=_json_default) + "\n"
    with atomic_dir(directory) as tmp:
        np.save(tmp / IMAGE_FILE, np.ascontiguousarray(image), allow_pickle=False)
        if label is not None:
            np.save(tmp / LABEL_FILE, np.ascontiguousarray(label), allow_pickle=False)
        np.savez(tmp / LOCATIONS_FILE, **arrays)  # type: ignore[arg-type]
        (tmp / PROPERTIES_FILE).write_text(text)


@dataclass(frozen=True)
class CachedCase:
    """A cached case on disk; arrays are opened lazily and memory-mapped."""

    case_id: str
    directory: Path
    properties: dict[str, Any]

    @property
    def has_label(self) -> bool:
        return bool(self.properties.get("has_label", False))

    def image(self) -> np.ndarray:
        """``(C, X, Y, Z)`` read-only memory map."""
        return np.load(self.directory / IMAGE_FILE, mmap_mode="r", allow_pickle=False)

    def label(self) -> np.ndarray | None:
        """``(X, Y, Z)`` uint8 read-only memory map, or ``None`` for an unlabelled case."""
        path = self.directory / LABEL_FILE
        return np.load(path, mmap_mode="r", allow_pickle=False) if path.exists() else None

    def locations(self) -> dict[int, np.ndarray]:
        """``{class: (N, 3) int32}`` for the foreground classes."""
        with np.load(self.directory / LOCATIONS_FILE, allow_pickle=False) as data:
            return {int(k): np.asarray(data[k]) for k in data.files}


def open_case(directory: Path) -> CachedCase:
    """Open a cached case written by :func:`write_cached_case`.

    Raises:
        FileNotFoundError: if ``directory`` holds no ``properties.json`` (not a cached case).
    """
    directory = Path(directory)
    path = directory / PROPERTIES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a cached case: {PROPERTIES_FILE} is missing")
    properties = json.loads(path.read_text())
    return CachedCase(str(properties["case_id"]), directory, properties)


def extract_patch(
    volume: np.ndarray, start: Sequence[int], size: Sequence[int], pad_value: float = 0
) -> np.ndarray:
    """A box of a volume, padded with ``pad_value`` where it runs outside.

    Only the needed slab is read, so a memory-mapped ``volume`` costs just the pages under the patch.

    Args:
        volume: ``(C, X, Y, Z)`` or ``(X, Y, Z)`` (a memory map is fine).
        start: the patch's first voxel ``(x, y, z)``; may be negative.
        size: the patch's ``(sx, sy, sz)``, each ``>= 1``; the patch may run past the end.
        pad_value: value of the voxels outside the volume.

    Returns:
        A new C-contiguous array (not a memory map) of shape ``(C, sx, sy, sz)`` or ``(sx, sy, sz)`` and the
        volume's dtype.
    """
    if volume.ndim not in (3, 4):
        raise ValueError(f"volume must have shape (C, X, Y, Z) or (X, Y, Z), got {volume.shape}")
    start_ = tuple(int(s) for s in start)
    size_ = tuple(int(s) for s in size)
    if len(start_) != 3 or len(size_) != 3:
        raise ValueError(f"start and size must have 3 entries, got start={tuple(start)} size={tuple(size)}")
    if any(s < 1 for s in size_):
        raise ValueError(f"size must be >= 1 on every axis, got {size_}")
    spatial = volume.shape[-3:]
    lead = volume.shape[:-3]
    src: list[slice] = []
    dst: list[slice] = []
    for lo, n, dim in zip(start_, size_, spatial, strict=True):
        a, b = max(lo, 0), min(lo + n, dim)
        if a >= b:  # no overlap at all
            return np.full((*lead, *size_), pad_value, dtype=volume.dtype)
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    inside = volume[(Ellipsis, src[0], src[1], src[2])]
    if all(d.start == 0 and d.stop == n for d, n in zip(dst, size_, strict=True)):
        return np.array(inside, copy=True, order="C", subok=False)
    out = np.full((*lead, *size_), pad_value, dtype=volume.dtype)
    out[(Ellipsis, dst[0], dst[1], dst[2])] = inside
    return out


@dataclass(frozen=True)
class PreprocessedCohort:
    """The outputs of preprocessing that later stages read: the cached cases and the split over them.

    Attributes:
        cases: folder holding one cached case folder per case id.
        split: ``splits.json``: split name (``train``, ``val``, ``test``, ``unlabelled``) -> case ids.
        manifest: ``manifest.csv``: one row per case (shapes, spacings, volumes, intensity statistics).
        fingerprint: ``fingerprint.json``: the dataset fingerprint and the cohort's label set.
    """

    cases: Path
    split: Path
    manifest: Path
    fingerprint: Path

    def labels(self) -> LabelSet:
        """The cohort's label set (settled by the split stage, see ``bratseg.preprocess.fingerprint``)."""
        return label_set(json.loads(self.fingerprint.read_text())["labels"]["name"])

    def target_spacing(self) -> list[float] | None:
        """The spacing the cases were resampled to (``None``: each kept its native grid)."""
        value = json.loads(self.fingerprint.read_text()).get("target_spacing_mm")
        return None if value is None else [float(v) for v in value]

    def case(self, case_id: str) -> CachedCase:
        return open_case(self.cases / case_id)

    def load_split(self) -> dict[str, list[CachedCase]]:
        """The cached cases of each split, in the order of ``splits.json``."""
        split = json.loads(self.split.read_text())
        return {name: [self.case(cid) for cid in ids] for name, ids in split.items()}
