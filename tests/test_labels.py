"""Label sets as data: round trips of values and classes per set, regions, decoding of sigmoid targets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bratseg.labels import (
    BACKGROUND,
    BRATS_2021,
    BRATS_2023,
    BRATS_2024,
    BRATS_2024_PED,
    CANONICAL,
    CC,
    ET,
    LABEL_SETS,
    MSD_TASK01,
    NETC,
    RC,
    SNFH,
    UnknownLabelError,
    label_set,
    region_descriptions,
)

SETS = list(LABEL_SETS.values())
IDS = list(LABEL_SETS)

#: What each release's files mean, written out from the releases' documentation (not from the table).
ON_DISK = {
    "brats2021": {0: BACKGROUND, 1: NETC, 2: SNFH, 4: ET},  # 1 NCR, 2 ED, 4 ET
    "brats2023": {0: BACKGROUND, 1: NETC, 2: SNFH, 3: ET},  # 1 NETC, 2 SNFH, 3 ET
    "brats2024": {0: BACKGROUND, 1: NETC, 2: SNFH, 3: ET, 4: RC},  # + 4 resection cavity
    "brats2024_ped": {0: BACKGROUND, 1: ET, 2: NETC, 3: CC, 4: SNFH},  # 1 ET, 2 NETC, 3 CC, 4 ED
    "msd_task01": {0: BACKGROUND, 1: SNFH, 2: NETC, 3: ET},  # 1 edema, 2 non-enhancing, 3 enhancing
}
#: The challenges' evaluated regions, as canonical classes.
REGIONS = {
    "brats2021": {"WT": {NETC, SNFH, ET}, "TC": {NETC, ET}, "ET": {ET}},
    "brats2023": {"WT": {NETC, SNFH, ET}, "TC": {NETC, ET}, "ET": {ET}},
    "brats2024": {
        "WT": {NETC, SNFH, ET},
        "TC": {NETC, ET},
        "ET": {ET},
        "NETC": {NETC},
        "SNFH": {SNFH},
        "RC": {RC},
    },
    "brats2024_ped": {
        "WT": {ET, NETC, CC, SNFH},
        "TC": {ET, NETC, CC},
        "ET": {ET},
        "NETC": {NETC},
        "CC": {CC},
        "ED": {SNFH},
    },
    "msd_task01": {"WT": {NETC, SNFH, ET}, "TC": {NETC, ET}, "ET": {ET}},
}


def test_the_table_holds_every_release():
    assert set(LABEL_SETS) == set(ON_DISK)
    for name, labels in LABEL_SETS.items():
        assert label_set(name) is labels and labels.name == name
    with pytest.raises(ValueError, match=r"unknown label set 'brats2025'.*brats2021.*msd_task01"):
        label_set("brats2025")


@pytest.mark.parametrize("labels", SETS, ids=IDS)
def test_values_mean_what_the_release_says(labels):
    assert dict(labels.values) == ON_DISK[labels.name]
    assert labels.classes == tuple(sorted(set(ON_DISK[labels.name].values()) - {BACKGROUND}))
    assert set(labels.names) == set(labels.classes)


@pytest.mark.parametrize("labels", SETS, ids=IDS)
def test_round_trip_values_classes_values(labels):
    values = np.array(sorted(labels.values), dtype=np.int16)
    seg = np.random.default_rng(0).choice(values, size=(5, 4, 3))
    classes = labels.to_classes(seg)
    assert classes.dtype == np.uint8 and classes.shape == seg.shape
    for value, cls in labels.values.items():
        assert np.all(classes[seg == value] == cls)
    back = labels.from_classes(classes)
    np.testing.assert_array_equal(back, seg)
    np.testing.assert_array_equal(labels.to_classes(back), classes)


@pytest.mark.parametrize("labels", SETS, ids=IDS)
def test_unknown_values_are_named(labels):
    bad = max(labels.values) + 1
    with pytest.raises(UnknownLabelError) as info:
        labels.to_classes(np.array([0, bad, -1, bad]))
    message = str(info.value)
    assert f"[-1, {bad}]" in message and labels.name in message and "data.labels" in message
    assert "\n" not in message


def test_the_2024_cavity_is_unknown_to_2023_and_the_2021_enhancing_value_to_2023():
    with pytest.raises(UnknownLabelError, match=r"\[4\].*brats2023"):
        BRATS_2023.to_classes(np.array([0, 1, 4]))
    with pytest.raises(UnknownLabelError, match=r"\[3\].*brats2021"):
        BRATS_2021.to_classes(np.array([0, 3]))
    assert BRATS_2024.to_classes(np.array([4]))[0] == RC


def test_float_segmentation_is_refused():
    with pytest.raises(TypeError, match="integers"):
        BRATS_2021.to_classes(np.array([0.0, 1.0]))


@pytest.mark.parametrize("labels", SETS, ids=IDS)
def test_regions_follow_the_challenge_definitions(labels):
    assert {r.name: set(r.classes) for r in labels.regions} == REGIONS[labels.name]
    assert labels.region_names[:3] == ("WT", "TC", "ET")
    every = np.arange(len(CANONICAL), dtype=np.uint8)
    masks = labels.region_masks(every)
    for region, mask in zip(labels.regions, masks, strict=True):
        assert set(np.flatnonzero(mask).tolist()) == set(region.classes), region.name
    assert labels.region("WT").classes == labels.regions[0].classes
    with pytest.raises(KeyError, match="no region 'XX'"):
        labels.region("XX")


@pytest.mark.parametrize("labels", SETS, ids=IDS)
def test_decode_inverts_training_masks_for_every_class(labels):
    classes = np.array([BACKGROUND, *labels.classes], dtype=np.uint8).reshape(1, 1, -1)
    masks = labels.training_masks(classes)
    assert masks.shape == (len(labels.hierarchy), *classes.shape)
    assert labels.n_outputs("regions") == len(labels.hierarchy)
    assert labels.n_outputs("classes") == len(labels.classes) + 1
    np.testing.assert_array_equal(labels.decode(masks), classes)


@pytest.mark.parametrize("labels", SETS, ids=IDS)
def test_decode_gives_a_valid_class_for_any_mask_combination(labels):
    """Inconsistent predictions (ET outside WT ...) still decode to a class of the set; later regions win."""
    k = len(labels.hierarchy)
    combos = np.array(list(itertools.product((False, True), repeat=k))).T.reshape(k, 1, 1, -1)
    decoded = labels.decode(combos)
    assert set(np.unique(decoded).tolist()) <= {BACKGROUND, *labels.classes}
    for column in range(combos.shape[-1]):
        on = [cls for (name, cls), m in zip(labels.hierarchy, combos[:, 0, 0, column], strict=True) if m]
        assert decoded[0, 0, column] == (on[-1] if on else BACKGROUND)


def test_adult_decoding_is_nnunet_region_order():
    assert BRATS_2021.hierarchy == (("WT", SNFH), ("TC", NETC), ("ET", ET))
    regions = np.zeros((3, 1, 1, 2), bool)
    regions[2, 0, 0, 0] = True  # ET alone: enhancing
    regions[1, 0, 0, 1] = True  # TC alone: necrosis
    assert BRATS_2021.decode(regions).ravel().tolist() == [ET, NETC]
    with pytest.raises(ValueError, match=r"shape \(3, \*spatial\)"):
        BRATS_2021.decode(np.zeros((2, 3, 3), bool))
    with pytest.raises(ValueError, match="target"):
        BRATS_2021.n_outputs("softmax")


def test_ped_and_msd_value_meanings():
    """PED 2024: 1 ET, 2 NETC, 3 CC, 4 ED; the Decathlon: 1 edema, 2 non-enhancing, 3 enhancing."""
    ped = BRATS_2024_PED.to_classes(np.array([1, 2, 3, 4]))
    assert ped.tolist() == [ET, NETC, CC, SNFH]
    assert [BRATS_2024_PED.names[c] for c in ped] == ["ET", "NETC", "CC", "ED"]
    et, tc = BRATS_2024_PED.region_masks(ped, ["ET", "TC"])
    assert et.tolist() == [True, False, False, False] and tc.tolist() == [True, True, True, False]
    msd = MSD_TASK01.to_classes(np.array([1, 2, 3]))
    assert msd.tolist() == [SNFH, NETC, ET]
    # the same classes written in another convention
    assert BRATS_2021.from_classes(msd).tolist() == [2, 1, 4]
    assert MSD_TASK01.from_classes(BRATS_2021.to_classes(np.array([1, 2, 4]))).tolist() == [2, 1, 3]


def test_from_classes_refuses_classes_a_set_cannot_write():
    with pytest.raises(ValueError, match=r"classes \[4\] have no value in label set brats2021"):
        BRATS_2021.from_classes(np.array([0, RC]))
    with pytest.raises(ValueError, match=r"classes \[5\] have no value in label set brats2024"):
        BRATS_2024.from_classes(np.array([CC, ET]))
    with pytest.raises(ValueError, match=r"classes \[4\] have no value in label set brats2024_ped"):
        BRATS_2024_PED.from_classes(np.array([RC]))
    with pytest.raises(ValueError, match=r"\[9\]"):
        BRATS_2023.from_classes(np.array([9]))
    assert BRATS_2024.can_write(BRATS_2021.classes) and not BRATS_2021.can_write(BRATS_2024.classes)
    assert BRATS_2024_PED.can_write([CC]) and not BRATS_2024.can_write([CC])


def test_volumes_in_millilitres_honour_spacing():
    classes = np.zeros((10, 10, 10), np.uint8)
    classes[:2, :5, :10] = ET  # 100 voxels
    classes[5, 0, :10] = SNFH  # 10 voxels
    classes[9, 9, :5] = RC  # 5 voxels
    assert BRATS_2021.volumes_ml(classes, (2.0, 1.0, 0.5)) == pytest.approx(
        {"WT": 0.11, "TC": 0.1, "ET": 0.1}
    )
    vols = BRATS_2024.volumes_ml(classes, (1.0, 1.0, 1.0))
    assert vols["RC"] == pytest.approx(0.005) and vols["WT"] == pytest.approx(0.11)


def test_region_descriptions_cover_every_region():
    described = region_descriptions()
    assert {r.name for s in SETS for r in s.regions} == set(described)
    assert described["RC"] == "resection cavity" and described["CC"] == "cystic component"
