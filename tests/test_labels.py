import numpy as np
import pytest

from bratseg.labels import BRATS_2021, BRATS_2023, EDEMA, ENHANCING, NECROSIS, UnknownLabelError


@pytest.mark.parametrize(("convention", "enhancing"), [(BRATS_2021, 4), (BRATS_2023, 3)])
def test_round_trip_between_values_and_classes(convention, enhancing):
    seg = np.array([[[0, 1], [2, enhancing]]], dtype=np.uint8)
    classes = convention.to_classes(seg)
    assert classes.tolist() == [[[0, NECROSIS], [EDEMA, ENHANCING]]]
    np.testing.assert_array_equal(convention.from_classes(classes), seg)


def test_unknown_label_is_rejected_with_the_values_named():
    with pytest.raises(UnknownLabelError, match=r"\[3\].*brats2021"):
        BRATS_2021.to_classes(np.array([0, 1, 3]))
    with pytest.raises(UnknownLabelError, match=r"\[4\].*brats2023"):
        BRATS_2023.to_classes(np.array([0, 4]))


def test_float_segmentation_is_refused():
    with pytest.raises(TypeError):
        BRATS_2021.to_classes(np.array([0.0, 1.0]))


def test_regions_are_nested_as_brats_defines_them():
    classes = np.array([0, NECROSIS, EDEMA, ENHANCING])
    wt, tc, et = BRATS_2021.region_masks(classes)
    assert wt.tolist() == [False, True, True, True]
    assert tc.tolist() == [False, True, False, True]
    assert et.tolist() == [False, False, False, True]


def test_regions_to_classes_inverts_and_resolves_inconsistency():
    classes = np.arange(4, dtype=np.uint8).reshape(1, 2, 2)
    np.testing.assert_array_equal(BRATS_2021.decode(BRATS_2021.region_masks(classes)), classes)
    # ET predicted outside WT is still enhancing; TC outside WT is necrosis.
    regions = np.zeros((3, 1, 1, 2), bool)
    regions[2, 0, 0, 0] = True
    regions[1, 0, 0, 1] = True
    assert BRATS_2021.decode(regions).ravel().tolist() == [ENHANCING, NECROSIS]


def test_regions_to_classes_rejects_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        BRATS_2021.decode(np.zeros((2, 3, 3), bool))


def test_from_classes_rejects_out_of_range():
    with pytest.raises(ValueError):
        BRATS_2021.from_classes(np.array([0, 4]))


def test_volumes_in_millilitres_honour_spacing():
    classes = np.zeros((10, 10, 10), np.uint8)
    classes[:2, :5, :10] = ENHANCING  # 100 voxels
    classes[5, 0, :10] = EDEMA  # 10 voxels
    vols = BRATS_2021.volumes_ml(classes, (2.0, 1.0, 0.5))
    assert vols == pytest.approx({"WT": 0.11, "TC": 0.1, "ET": 0.1})
