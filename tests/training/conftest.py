"""Tiny cached cases (odd sizes, a tumour with all three classes) for sampler and loop tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bratseg.cache import CachedCase, open_case, write_cached_case
from bratseg.labels import EDEMA, ENHANCING, NECROSIS
from bratseg.preprocess.locations import sample_locations


def make_cached_case(
    root: Path, case_id: str, shape: tuple[int, int, int], seed: int, label: bool = True
) -> CachedCase:
    rng = np.random.default_rng(seed)
    classes = np.zeros(shape, np.uint8)
    centre = np.array(shape) // 2 + rng.integers(-2, 3, size=3)
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    dist = np.linalg.norm(grid - centre, axis=-1)
    classes[dist < 5] = EDEMA
    classes[dist < 3] = ENHANCING
    classes[dist < 1.5] = NECROSIS
    image = rng.normal(size=(4, *shape)).astype(np.float32)
    image[3] += 2.0 * (classes > 0)  # FLAIR-like: tumour is bright
    image[1] += 2.0 * (classes == ENHANCING)  # T1ce-like: the rim enhances
    locations = sample_locations(classes, 50, seed)
    properties = {"case_id": case_id, "convention": "brats2021"}
    write_cached_case(
        root / case_id, image.astype(np.float16), classes if label else None, locations, properties
    )
    return open_case(root / case_id)


@pytest.fixture
def cached_cases(tmp_path: Path) -> list[CachedCase]:
    shapes = [(23, 27, 19), (25, 21, 29), (17, 31, 23)]
    return [make_cached_case(tmp_path, f"BraTS2021_{i:05d}", s, i) for i, s in enumerate(shapes)]


@pytest.fixture
def case_factory(tmp_path: Path) -> Callable[..., CachedCase]:
    return lambda *args, **kw: make_cached_case(tmp_path, *args, **kw)


@pytest.fixture(scope="session")
def make_case() -> Callable[..., CachedCase]:
    """:func:`make_cached_case` itself, for fixtures of a wider scope than ``case_factory``."""
    return make_cached_case
