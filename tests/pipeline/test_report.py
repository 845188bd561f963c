import nibabel as nib
import numpy as np
import pandas as pd

from bratseg.pipeline.report import select_cases, to_ras


def test_select_worst_and_best_without_repeats():
    cases = pd.DataFrame({"case_id": list("abcde"), "dice_mean": [0.5, 0.9, 0.1, 0.7, 0.3]})
    assert select_cases(cases, 2) == ["c", "e", "b", "d"]
    assert select_cases(cases, 3) == ["c", "e", "a", "b", "d"]
    assert select_cases(cases.head(2), 3) == ["a", "b"]
    assert select_cases(cases, 0) == []


def test_to_ras_reorders_an_lps_volume():
    data = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    out = to_ras(data, lps)
    np.testing.assert_array_equal(out, data[::-1, ::-1, :])
    swapped = np.array([[0, 1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1]])  # i->A, j->R
    assert to_ras(data, swapped).shape == (3, 2, 4)
    np.testing.assert_array_equal(to_ras(data, np.eye(4)), data)
    assert nib.aff2axcodes(lps) == ("L", "P", "S")
