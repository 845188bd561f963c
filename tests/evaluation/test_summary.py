import math

import pandas as pd
import pytest

from bratseg.evaluation.summary import METRICS, summarise
from bratseg.labels import BRATS_2021

REGIONS = BRATS_2021.region_names


def frame(values):
    rows = []
    for i, v in enumerate(values):
        row = {"case_id": f"C{i}"}
        for metric in METRICS:
            for region in REGIONS:
                row[f"{metric}_{region}"] = v
        rows.append(row)
    return pd.DataFrame(rows)


def test_summary_has_mean_and_median_per_metric_and_region():
    summary = summarise(frame([0.2, 0.4, 0.9]))
    assert summary["n_cases"] == 3
    for metric in METRICS:
        for region in REGIONS:
            assert summary[metric][region] == {"mean": pytest.approx(0.5), "median": pytest.approx(0.4)}
    assert summary["dice"]["mean"] == pytest.approx(0.5)


def test_nan_values_are_left_out_and_all_nan_is_none():
    summary = summarise(frame([0.2, math.nan, 0.6]))
    assert summary["hd95"]["ET"]["mean"] == pytest.approx(0.4)
    empty = summarise(frame([math.nan, math.nan]))
    assert empty["dice"]["WT"] == {"mean": None, "median": None}
    assert empty["dice"]["mean"] is None


def test_summary_is_json_stable():
    import json

    a = json.dumps(summarise(frame([0.123456789, 0.5])), sort_keys=True)
    assert a == json.dumps(summarise(frame([0.123456789, 0.5])), sort_keys=True)
    assert "0.311728" in a  # rounded to 6 decimals
