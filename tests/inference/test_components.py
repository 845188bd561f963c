"""Connected-component steps of the post-processing: components without a tumour core, unconfident
enhancing components."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bratseg.inference.components import (
    check_classes,
    check_min_voxels,
    relabel_unconfident_enhancing,
    remove_coreless_components,
)
from bratseg.labels import BACKGROUND, BRATS_2021, EDEMA, ENHANCING, NECROSIS, label_set


def _tumours() -> np.ndarray:
    """(17, 13, 11): tumours with a 2-voxel necrotic core and a 1-voxel enhancing one, an edema-only blob,
    and an edema voxel touching the first by a corner only (one component with it under 26-connectivity)."""
    classes = np.zeros((17, 13, 11), dtype=np.uint8)
    classes[1:6, 1:6, 1:6] = EDEMA
    classes[3, 3, 3:5] = NECROSIS  # 2 core voxels
    classes[9:12, 8:11, 5:8] = EDEMA
    classes[11, 9, 6] = ENHANCING  # 1 core voxel
    classes[13:16, 1:4, 1:4] = EDEMA  # no core: removed
    classes[6, 6, 6] = EDEMA  # corner-touching the first tumour: part of it
    return classes


def test_coreless_components_are_removed_by_core_size() -> None:
    classes = _tumours()
    before = classes.copy()
    out, removed = remove_coreless_components(classes, 1)
    assert removed == 1
    assert not out[13:16, 1:4, 1:4].any()
    assert out[6, 6, 6] == EDEMA  # corner neighbour of a cored component stays
    np.testing.assert_array_equal(out[:12], classes[:12])
    np.testing.assert_array_equal(classes, before)
    assert out.dtype == classes.dtype and out is not classes
    # 2 core voxels needed: the 1-voxel enhancing core's component goes too, the 2-voxel necrosis stays
    out, removed = remove_coreless_components(classes, 2)
    assert removed == 2 and not out[9:12, 8:11, 5:8].any() and (out[3, 3, 3:5] == NECROSIS).all()
    out, removed = remove_coreless_components(classes, 3)
    assert removed == 3 and not out.any()


def test_coreless_disabled_or_empty_is_identity() -> None:
    classes = _tumours()
    out, removed = remove_coreless_components(classes, 0)
    assert removed == 0
    np.testing.assert_array_equal(out, classes)
    empty = np.zeros((5, 4, 3), dtype=np.int16)
    out, removed = remove_coreless_components(empty, 5)
    assert removed == 0 and out.dtype == np.int16 and not out.any()


def test_coreless_uses_the_label_sets_core() -> None:
    # BraTS 2024 pediatric: the cystic component (CC) is tumour core, edema (ED / SNFH) is not
    peds = label_set("brats2024_ped")
    cc = next(cls for name, cls in peds.hierarchy if name == "CC")
    classes = np.zeros((9, 7, 5), dtype=np.uint8)
    classes[1:3, 1:3, 1:3] = EDEMA
    classes[2, 2, 2] = cc
    classes[6:8, 4:6, 2:4] = EDEMA
    out, removed = remove_coreless_components(classes, 1, peds)
    assert removed == 1 and out[2, 2, 2] == cc and not out[6:8].any()


def test_coreless_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="min_core_voxels must be >= 0"):
        remove_coreless_components(_tumours(), -1)
    with pytest.raises(TypeError, match="integers"):
        remove_coreless_components(_tumours().astype(np.float32), 1)
    whole_only = dataclasses.replace(
        BRATS_2021, name="whole_only", regions=BRATS_2021.regions[:1], hierarchy=BRATS_2021.hierarchy[:1]
    )
    with pytest.raises(ValueError, match="whole_only lacks a WT or TC region"):
        remove_coreless_components(_tumours(), 1, whole_only)
    # disabled, it needs no core region
    assert remove_coreless_components(_tumours(), 0, whole_only)[1] == 0


def test_coreless_leaves_a_resection_cavity_alone() -> None:
    # BraTS 2024 post-treatment: a resection cavity is no tumour, so a cavity-only component is not "coreless"
    post = label_set("brats2024")
    rc = next(cls for name, cls in post.hierarchy if name == "RC")
    classes = _tumours()
    classes[1:4, 9:12, 7:10] = rc
    out, removed = remove_coreless_components(classes, 1, post)
    assert removed == 1 and (out[1:4, 9:12, 7:10] == rc).all() and out[BACKGROUND + 13, 2, 2] == 0


def test_checks() -> None:
    assert check_classes([[1, 2]]).dtype.kind == "i"
    with pytest.raises(TypeError, match="float64"):
        check_classes(np.zeros(3))
    check_min_voxels("x", 0)
    with pytest.raises(ValueError, match="x must be >= 0, got -2"):
        check_min_voxels("x", -2)


def test_unconfident_enhancing_components_are_relabelled_by_mean_probability() -> None:
    classes = _tumours()
    classes[1:3, 1:3, 1] = ENHANCING  # 4 voxels in the first tumour, besides the 1-voxel focus of the second
    prob = np.zeros(classes.shape, dtype=np.float32)
    prob[1:3, 1:3, 1] = [[0.875, 0.5], [0.5, 0.5]]  # mean 0.59375 although one voxel is at 0.875
    prob[11, 9, 6] = 0.7
    before = classes.copy()
    out, n = relabel_unconfident_enhancing(classes, prob, 0.65)
    assert n == 1 and (out[1:3, 1:3, 1] == NECROSIS).all() and out[11, 9, 6] == ENHANCING
    changed = out != classes
    np.testing.assert_array_equal(
        changed, np.isin(np.indices(classes.shape)[0], [1, 2]) & (before == ENHANCING)
    )
    np.testing.assert_array_equal(classes, before)
    assert out.dtype == classes.dtype
    assert relabel_unconfident_enhancing(classes, prob, 0.75)[1] == 2
    assert relabel_unconfident_enhancing(classes, prob, 0.59375)[1] == 0  # the mean must be below the cut
    off, n_off = relabel_unconfident_enhancing(classes, prob, 0.0)
    assert n_off == 0 and off is not classes
    np.testing.assert_array_equal(off, classes)


@pytest.mark.parametrize(
    ("min_mean", "shape", "message"),
    [(-0.1, None, "min_mean"), (1.5, None, "min_mean"), (0.5, (3, 3, 3), "shape")],
)
def test_unconfident_enhancing_rejects_bad_arguments(
    min_mean: float, shape: tuple[int, ...] | None, message: str
) -> None:
    classes = _tumours()
    prob = np.zeros(shape or classes.shape)
    with pytest.raises(ValueError, match=message):
        relabel_unconfident_enhancing(classes, prob, min_mean)
