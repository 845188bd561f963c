"""Intermediate ``.npz`` files between the per-case steps: arrays plus a JSON ``meta`` mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bratseg.io import atomic_path


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
