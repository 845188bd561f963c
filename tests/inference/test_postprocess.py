"""Post-processing: probabilities to classes, small components, the small-enhancing-tumour relabelling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bratseg.config import PostprocessParams
from bratseg.inference.postprocess import (
    PostprocessPlan,
    classes_from_probabilities,
    enhancing_probability,
    keep_largest_component,
    keep_largest_components,
    largest_component_fill,
    postprocess,
    probabilities_to_classes,
    relabel_small_enhancing,
    remove_small_components,
)
from bratseg.labels import BACKGROUND, BRATS_2021, EDEMA, ENHANCING, NECROSIS, label_set


def _params(min_component_voxels: int = 0, et_min_voxels: int = 0) -> PostprocessParams:
    return PostprocessParams(
        threshold=0.5,
        et_min_mean_probability=0.0,
        min_component_voxels=min_component_voxels,
        min_core_voxels=0,
        largest_component=(),
        et_min_voxels=et_min_voxels,
        select=False,
        et_min_voxels_candidates=(0,),
    )


# --- probabilities_to_classes -------------------------------------------------------------------------------


def _region_probs(*voxels: tuple[float, float, float]) -> np.ndarray:
    """(3, n, 1, 1) probabilities, one voxel per (WT, TC, ET) triple."""
    return np.array(voxels, dtype=np.float32).T[:, :, None, None]


def test_regions_threshold_and_hierarchy() -> None:
    probs = _region_probs(
        (0.1, 0.1, 0.1),  # nothing
        (0.9, 0.1, 0.1),  # WT only -> edema
        (0.9, 0.9, 0.1),  # WT + TC -> necrosis
        (0.9, 0.9, 0.9),  # all -> enhancing
        (0.1, 0.1, 0.9),  # ET outside TC and WT -> still enhancing
        (0.1, 0.9, 0.1),  # TC outside WT -> necrosis
        (0.9, 0.1, 0.9),  # ET outside TC -> enhancing
        (0.5, 0.5, 0.5),  # exactly at the threshold -> not in the region
    )
    before = probs.copy()
    out = probabilities_to_classes(probs, "regions")
    assert out.dtype == np.uint8
    assert out.shape == (8, 1, 1)
    assert out[:, 0, 0].tolist() == [
        BACKGROUND,
        EDEMA,
        NECROSIS,
        ENHANCING,
        ENHANCING,
        NECROSIS,
        ENHANCING,
        BACKGROUND,
    ]
    np.testing.assert_array_equal(probs, before)


def test_regions_threshold_parameter() -> None:
    probs = _region_probs((0.3, 0.2, 0.1))
    assert probabilities_to_classes(probs, "regions", threshold=0.5)[0, 0, 0] == BACKGROUND
    assert probabilities_to_classes(probs, "regions", threshold=0.25)[0, 0, 0] == EDEMA
    assert probabilities_to_classes(probs, "regions", threshold=0.15)[0, 0, 0] == NECROSIS
    assert probabilities_to_classes(probs, "regions", threshold=0.05)[0, 0, 0] == ENHANCING


def test_classes_argmax() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 6, 5, 7))
    probs = np.exp(logits) / np.exp(logits).sum(axis=0)
    out = probabilities_to_classes(probs, "classes")
    assert out.dtype == np.uint8
    assert out.shape == (6, 5, 7)
    np.testing.assert_array_equal(out, probs.argmax(axis=0))
    assert set(np.unique(out)) <= {0, 1, 2, 3}
    tie = np.full((4, 1, 1, 1), 0.25)
    assert probabilities_to_classes(tie, "classes")[0, 0, 0] == BACKGROUND


@pytest.mark.parametrize(
    ("probs", "target", "threshold", "name"),
    [
        (np.zeros((4, 2, 2, 2)), "regions", 0.5, "probs"),
        (np.zeros((3, 2, 2, 2)), "classes", 0.5, "probs"),
        (np.zeros((3,)), "regions", 0.5, "probs"),
        (np.zeros((3, 2, 2, 2)), "labels", 0.5, "target"),
        (np.zeros((3, 2, 2, 2)), "regions", 1.5, "threshold"),
    ],
)
def test_probabilities_invalid(probs: np.ndarray, target: str, threshold: float, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        probabilities_to_classes(probs, target, threshold)


# --- remove_small_components --------------------------------------------------------------------------------


def _blobs() -> np.ndarray:
    classes = np.zeros((20, 20, 20), dtype=np.uint8)
    classes[2:8, 2:8, 2:8] = EDEMA  # 216 voxels
    classes[4:6, 4:6, 4:6] = ENHANCING  # inside the big one
    classes[15:17, 15:17, 15:17] = NECROSIS  # 8 voxels, separate
    classes[12, 2, 2] = ENHANCING  # 1 voxel, separate
    return classes


def test_small_components_removed() -> None:
    classes = _blobs()
    before = classes.copy()
    out, removed = remove_small_components(classes, min_voxels=10)
    assert removed == 2
    assert out.dtype == classes.dtype
    expected = before.copy()
    expected[15:17, 15:17, 15:17] = BACKGROUND
    expected[12, 2, 2] = BACKGROUND
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(classes, before)


def test_components_threshold_is_strict_and_zero_disables() -> None:
    classes = _blobs()
    out, removed = remove_small_components(classes, min_voxels=8)  # the 8-voxel component stays
    assert removed == 1
    assert out[15, 15, 15] == NECROSIS and out[12, 2, 2] == BACKGROUND
    out, removed = remove_small_components(classes, min_voxels=0)
    assert removed == 0
    np.testing.assert_array_equal(out, classes)
    assert out is not classes
    empty, removed = remove_small_components(np.zeros((4, 4, 4), dtype=np.uint8), min_voxels=5)
    assert removed == 0 and not empty.any()


def test_components_use_26_connectivity_over_the_whole_tumour() -> None:
    classes = np.zeros((6, 6, 6), dtype=np.int64)
    # a diagonal chain of 4 voxels touching only at corners, with mixed classes: one component
    for i, c in enumerate((EDEMA, NECROSIS, ENHANCING, EDEMA)):
        classes[i + 1, i + 1, i + 1] = c
    out, removed = remove_small_components(classes, min_voxels=4)
    assert removed == 0
    np.testing.assert_array_equal(out, classes)
    out, removed = remove_small_components(classes, min_voxels=5)
    assert removed == 1
    assert not out.any()
    # edge neighbours are connected too
    edge = np.zeros((4, 4, 4), dtype=np.uint8)
    edge[1, 1, 1] = edge[2, 2, 1] = EDEMA
    assert remove_small_components(edge, min_voxels=2)[1] == 0


# --- relabel_small_enhancing --------------------------------------------------------------------------------


def test_small_enhancing_relabelled_as_necrosis() -> None:
    classes = np.zeros((8, 8, 8), dtype=np.uint8)
    classes[1:5, 1:5, 1:5] = EDEMA
    classes[2:4, 2:4, 2] = ENHANCING  # 4 voxels
    classes[2, 2, 3] = NECROSIS
    before = classes.copy()
    out, applied = relabel_small_enhancing(classes, min_voxels=5)
    assert applied
    assert not (out == ENHANCING).any()
    assert (out[2:4, 2:4, 2] == NECROSIS).all()
    np.testing.assert_array_equal(out[classes != ENHANCING], classes[classes != ENHANCING])
    np.testing.assert_array_equal(classes, before)

    out, applied = relabel_small_enhancing(classes, min_voxels=4)  # 4 voxels is not below 4
    assert not applied
    np.testing.assert_array_equal(out, classes)
    out, applied = relabel_small_enhancing(classes, min_voxels=0)
    assert not applied
    np.testing.assert_array_equal(out, classes)


def test_no_enhancing_is_not_relabelled() -> None:
    classes = np.full((3, 3, 3), EDEMA, dtype=np.uint8)
    out, applied = relabel_small_enhancing(classes, min_voxels=100)
    assert not applied
    np.testing.assert_array_equal(out, classes)


def test_invalid_min_voxels_and_dtype() -> None:
    with pytest.raises(ValueError, match="min_voxels"):
        remove_small_components(np.zeros((2, 2, 2), dtype=np.uint8), -1)
    with pytest.raises(ValueError, match="min_voxels"):
        relabel_small_enhancing(np.zeros((2, 2, 2), dtype=np.uint8), -1)
    with pytest.raises(TypeError, match="classes"):
        remove_small_components(np.zeros((2, 2, 2), dtype=np.float32), 1)


# --- postprocess --------------------------------------------------------------------------------------------


def test_postprocess_both_disabled_is_identity() -> None:
    classes = _blobs()
    out, provenance = postprocess(classes, _params())
    np.testing.assert_array_equal(out, classes)
    assert out is not classes
    assert provenance == {
        "components_removed": 0,
        "coreless_removed": 0,
        "largest_component_removed": 0,
        "et_relabelled": False,
    }


def test_postprocess_applies_both_in_order() -> None:
    classes = _blobs()
    before = classes.copy()
    # removing the isolated enhancing voxel first leaves 8 enhancing voxels, below 9 -> relabelled
    out, provenance = postprocess(classes, _params(min_component_voxels=5, et_min_voxels=9))
    assert provenance == {
        "components_removed": 1,
        "coreless_removed": 0,
        "largest_component_removed": 0,
        "et_relabelled": True,
    }
    assert not (out == ENHANCING).any()
    assert out[12, 2, 2] == BACKGROUND
    assert (out[4:6, 4:6, 4:6] == NECROSIS).all()
    assert out[15, 15, 15] == NECROSIS
    np.testing.assert_array_equal(classes, before)

    out, provenance = postprocess(classes, _params(min_component_voxels=0, et_min_voxels=9))
    # 9 enhancing voxels remain
    assert provenance == {
        "components_removed": 0,
        "coreless_removed": 0,
        "largest_component_removed": 0,
        "et_relabelled": False,
    }
    np.testing.assert_array_equal(out, classes)


# --- largest connected component ----------------------------------------------------------------------------


def _two_tumours() -> np.ndarray:
    """(13, 11, 9): a big tumour (edema, necrosis, enhancing core) and a small one (edema, enhancing)."""
    classes = np.zeros((13, 11, 9), dtype=np.uint8)
    classes[1:7, 1:7, 1:7] = EDEMA  # 216 voxels in all
    classes[2:6, 2:6, 2:6] = NECROSIS
    classes[3:5, 3:5, 3:5] = ENHANCING
    classes[9:12, 8:11, 5:8] = EDEMA  # 27 voxels, apart
    classes[10, 9, 6] = ENHANCING
    return classes


def test_largest_component_fill_follows_the_region_hierarchy() -> None:
    fills = [largest_component_fill(BRATS_2021, r) for r in ("WT", "TC", "ET")]
    assert fills == [BACKGROUND, EDEMA, NECROSIS]
    brats2024 = label_set("brats2024")
    assert largest_component_fill(brats2024, "RC") == BACKGROUND  # nothing contains the resection cavity
    assert largest_component_fill(brats2024, "NETC") == EDEMA
    with pytest.raises(KeyError):
        largest_component_fill(BRATS_2021, "RC")


def test_keep_largest_component_of_the_whole_tumour() -> None:
    classes = _two_tumours()
    before = classes.copy()
    out, removed = keep_largest_component(classes, (NECROSIS, EDEMA, ENHANCING), BACKGROUND)
    assert removed == 1
    expected = before.copy()
    expected[9:12, 8:11, 5:8] = BACKGROUND
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(classes, before)  # the input is left alone


def test_keep_largest_component_uses_full_connectivity_and_keeps_single_components() -> None:
    classes = np.zeros((5, 7, 3), dtype=np.uint8)
    classes[1, 1, 1] = ENHANCING
    classes[2, 2, 2] = ENHANCING  # touches the first one at a corner only: one 26-connected component
    out, removed = keep_largest_component(classes, (ENHANCING,), NECROSIS)
    assert removed == 0
    np.testing.assert_array_equal(out, classes)
    empty, removed = keep_largest_component(np.zeros((3, 5, 7), np.uint8), (ENHANCING,), NECROSIS)
    assert removed == 0 and not empty.any()
    with pytest.raises(ValueError, match="region_classes"):
        keep_largest_component(classes, (), BACKGROUND)


def test_keep_largest_components_in_region_order() -> None:
    classes = _two_tumours()
    # ET alone: the stray enhancing voxel of the small tumour becomes necrosis (still tumour core)
    out, removed = keep_largest_components(classes, ["ET"])
    assert removed == {"ET": 1} and out[10, 9, 6] == NECROSIS
    assert (out[3:5, 3:5, 3:5] == ENHANCING).all()
    # WT first (whatever the order asked): the whole small tumour goes, so nothing is left for ET to remove
    out, removed = keep_largest_components(classes, ["ET", "WT"])
    assert removed == {"WT": 1, "ET": 0}
    assert not out[9:12, 8:11, 5:8].any()
    with pytest.raises(ValueError, match="RC"):
        keep_largest_components(classes, ["RC"])


def test_postprocess_with_a_plan_keeps_the_largest_component_before_the_relabel() -> None:
    classes = _two_tumours()
    plan = PostprocessPlan(threshold=0.5, largest_component=("WT",), et_min_voxels=9)
    out, provenance = postprocess(classes, plan)
    # the 8 enhancing voxels left after the small tumour went are below 9: relabelled as necrosis
    assert provenance == {
        "components_removed": 0,
        "coreless_removed": 0,
        "largest_component_removed": 1,
        "et_relabelled": True,
    }
    assert not (out == ENHANCING).any() and not out[9:12, 8:11, 5:8].any()
    # a params section is taken as the plan it fixes
    params = dataclasses.replace(_params(), largest_component=("WT",))
    fixed = postprocess(classes, PostprocessPlan(0.5, 0, ("WT",)))[0]
    np.testing.assert_array_equal(postprocess(classes, params)[0], fixed)


def test_plan_round_trips_and_rejects_unknown_keys() -> None:
    plan = PostprocessPlan(0.4, 3, ("WT", "ET"), 50)
    assert PostprocessPlan.from_dict(plan.to_dict()) == plan
    assert PostprocessPlan.from_params(_params(2, 7)) == PostprocessPlan(0.5, 2, (), 7)
    assert "largest component only: WT, ET" in plan.describe() and "ET below 50" in plan.describe()
    with pytest.raises(ValueError, match="keys"):
        PostprocessPlan.from_dict({**plan.to_dict(), "extra": 1})
    with pytest.raises(ValueError, match="keys"):
        PostprocessPlan.from_dict({k: v for k, v in plan.to_dict().items() if k != "threshold"})
    # a plan written before min_core_voxels existed reads as 0; a new one keeps it
    old = {k: v for k, v in plan.to_dict().items() if k != "min_core_voxels"}
    assert PostprocessPlan.from_dict(old) == plan
    cored = PostprocessPlan(0.4, 3, ("WT",), 50, 10)
    assert PostprocessPlan.from_dict(cored.to_dict()) == cored
    assert "under 10 core voxels removed" in cored.describe()
    # likewise et_min_mean_probability
    confident = PostprocessPlan(0.4, 3, ("WT",), 50, 10, 0.65)
    assert PostprocessPlan.from_dict(confident.to_dict()) == confident
    old = {k: v for k, v in confident.to_dict().items() if k != "et_min_mean_probability"}
    assert PostprocessPlan.from_dict(old) == cored
    assert "mean probability below 0.65 relabelled NETC" in confident.describe()
    assert PostprocessPlan.from_params(dataclasses.replace(_params(), et_min_mean_probability=0.6)) == (
        PostprocessPlan(0.5, et_min_mean_probability=0.6)
    )


# --- the ET confidence on the network output ----------------------------------------------------------------


def _two_enhancing_foci(target: str) -> np.ndarray:
    """(C, 9, 7, 5) outputs with two enhancing foci inside a tumour core: a confident one at x 1..2 (ET
    probability 0.875) and an unconfident one at x 6..7 (0.5625 and 0.625: above the threshold, mean
    0.59375)."""
    et = np.zeros((9, 7, 5), dtype=np.float32)
    et[1:3, 2:4, 2] = 0.875
    et[6, 2:4, 2], et[7, 2:4, 2] = 0.5625, 0.625
    core = np.zeros_like(et)
    core[0:9, 1:5, 1:4] = 0.95
    if target == "regions":
        return np.stack([core, core, et])
    # softmax-like: background, NETC, SNFH, ET
    netc = np.where(et > 0, 1.0 - et, core) * (core > 0)
    background = 1.0 - np.maximum(core, et)
    return np.stack([background, netc, np.zeros_like(et), et])


@pytest.mark.parametrize("target", ["regions", "classes"])
def test_unconfident_enhancing_component_becomes_necrosis(target: str) -> None:
    probs = _two_enhancing_foci(target)
    np.testing.assert_array_equal(enhancing_probability(probs, target), probs[-1])
    plain, n_plain = classes_from_probabilities(probs, target, PostprocessPlan(0.5))
    assert (
        n_plain == 0 and (plain[1:3, 2:4, 2] == ENHANCING).all() and (plain[6:8, 2:4, 2] == ENHANCING).all()
    )
    for cut, relabelled in ((0.5, 0), (0.59375, 0), (0.6, 1), (0.875, 1), (0.9, 2)):
        out, n = classes_from_probabilities(probs, target, PostprocessPlan(0.5, et_min_mean_probability=cut))
        assert n == relabelled, cut
        assert (out[6:8, 2:4, 2] == (NECROSIS if relabelled else ENHANCING)).all()
        assert (out[1:3, 2:4, 2] == (NECROSIS if relabelled == 2 else ENHANCING)).all()
        # nothing but the relabelled enhancing voxels changes: the tumour core keeps its extent
        np.testing.assert_array_equal(out != plain, (plain == ENHANCING) & (out == NECROSIS))


def test_enhancing_probability_needs_an_et_channel() -> None:
    with pytest.raises(ValueError, match="must have shape"):
        enhancing_probability(np.zeros((2, 3, 3, 3)), "regions")
    with pytest.raises(ValueError, match="must have shape"):
        classes_from_probabilities(
            np.zeros((2, 3, 3, 3)), "classes", PostprocessPlan(0.5, et_min_mean_probability=0.5)
        )
