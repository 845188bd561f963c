"""Foreground voxel coordinates per class, stored with each cached case for tumour-centred patch sampling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def sample_locations(
    classes: npt.NDArray[np.integer], per_class: int, seed: int, foreground: Sequence[int] = (1, 2, 3)
) -> dict[int, npt.NDArray[np.int32]]:
    """Voxel coordinates of each foreground class, at most ``per_class`` of each, drawn without replacement.

    Each class draws from its own generator seeded with ``(seed, class)``, so the draw of one class does not
    depend on the others. The kept coordinates are in C (raster) order.

    Args:
        classes: ``(X, Y, Z)`` classes 0..3.
        per_class: the most coordinates kept per class (``>= 0``).
        seed: random seed (``>= 0``).
        foreground: the classes to keep locations of (the case's label set's classes).

    Returns:
        ``{class: (N, 3)}`` int32 arrays for each class of ``foreground``; an absent class gives ``(0, 3)``.
    """
    classes = np.asarray(classes)
    if classes.ndim != 3:
        raise ValueError(f"classes must be 3D (X, Y, Z), got shape {classes.shape}")
    if per_class < 0:
        raise ValueError(f"per_class must be >= 0, got {per_class}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    out: dict[int, npt.NDArray[np.int32]] = {}
    for cls in foreground:
        flat = np.flatnonzero(classes == cls)
        if flat.size > per_class:
            rng = np.random.default_rng([seed, cls])
            flat = np.sort(rng.choice(flat, size=per_class, replace=False))
        coords = np.stack(np.unravel_index(flat, classes.shape), axis=1) if flat.size else np.empty((0, 3))
        out[cls] = np.ascontiguousarray(coords, dtype=np.int32).reshape(-1, 3)
    return out
